using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt loadtest</c>: many tenants submitting jobs at once through a running gateway's HTTP API with one SignalR
/// client each, for a bounded time; then every result is checked through the REST API (none lost, none twice) and
/// the throughput is set against the TAPT engine's own, measured alone in this process with the same settings.
/// </summary>
public static class LoadTestCommand
{
    /// <summary>The Fashion-MNIST class names as the tenants' vocabulary (as run.sh creates it).</summary>
    public static readonly string[] Labels = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"];

    private sealed record Engine(bool Baseline, int Images, int Batch, int EngineThreads, string? ModelDir);

    public static Command Create()
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var operatorKey = CliOptions.Required("--operator-key", "the gateway's operator key (creates the tenants)", "KEY");
        var tenants = CliOptions.Int("--tenants", 20, "tenants submitting at once", 1, 1000);
        var duration = CliOptions.Int("--duration", 60, "seconds of submissions", 1, 3600, "SECONDS");
        var images = CliOptions.Int("--images", 16, "images per job", 1, 1000);
        var jobsPerTenant = CliOptions.Int("--jobs-per-tenant", 1, "jobs each tenant runs at a time", 1, 16);
        var drain = CliOptions.Int("--drain", 300, "seconds to wait at most for the jobs in flight", 1, 7200, "SECONDS");
        var warmup = CliOptions.Int("--warmup", 0, "seconds every tenant runs jobs first, not counted", 0, 3600, "SECONDS");
        var prefix = CliOptions.Defaulted("--tenant-prefix", "load", "prefix of the tenants' ids");
        var platformModel = CliOptions.Defaulted("--platform-model", ModelLocator.DefaultModelName, "the platform's model of the prompt configuration", "NAME");
        var pids = new Option<int[]>("--pid") { Description = "a platform process to measure (repeatable)", HelpName = "PID", Arity = ArgumentArity.OneOrMore };
        pids.Validators.Add(r =>
        {
            foreach (var p in r.GetValueOrDefault<int[]>() ?? [])
                if (p <= 0) r.AddError($"bad --pid '{p}'");
        });
        var baseline = CliOptions.Flag("--baseline", "also measure the engine alone in this process, before and after the load");
        var baselineImages = CliOptions.Int("--baseline-images", 160, "images of each engine-alone run", 1, 100_000);
        var model = CommonOptions.Model();
        var batch = CliOptions.Int("--batch", 8, "the engine's batch size (Tapt:Engine:MaxBatchSize)", 1, 256);
        var engineThreads = CliOptions.Int("--engine-threads", 1, "the engine's threads (Tapt:Engine:Threads)", 1, 64);
        var threads = CommonOptions.Threads();
        var json = CliOptions.Flag("--json", "print the report as JSON instead of the table");
        var jsonFile = CliOptions.Text("--json-file", "also write the JSON report to FILE", "FILE");
        var command = new Command("loadtest", """
            Many tenants submitting jobs to a gateway at once: throughput, latency, live delivery, none lost.
            Against a running gateway: creates --tenants tenants (vocabulary "fashion" of the 10 Fashion-MNIST labels, prompt
            configuration "default" on --platform-model with the artifact's own TAPT settings), connects one SignalR client
            per tenant, and lets each tenant run --jobs-per-tenant jobs at a time, each of --images Fashion-MNIST test
            images (upload, start, wait for every result), starting new jobs for --duration seconds; then waits up to
            --drain seconds for the jobs in flight. A 429 is counted and waited out (Retry-After). One warm-up job runs first
            and is not counted; with --warmup S every tenant runs jobs for S seconds first, not counted either, so that a
            freshly started platform's JIT compilation is over before the measurement. Every image of every job is then
            checked through GET /api/jobs/{id}/results.
            Reports: images/s (results), latency from the job's upload start to the image's result event (p50/p95/p99),
            SignalR delivery delay (the event's server time to its arrival; same machine, same clock), 429s by code, lost
            and duplicate results, and with --pid (repeatable) the resident memory and CPU time of those processes (the
            platform's: gateway, silos, Azurite) and so the platform's CPU per image, which other load on the machine
            distorts far less than images per second, split into the TAPT engine's own threads (tapt-tuning-N) and the
            rest (HTTP, grains, storage clients, Azurite, JIT, GC).
            --baseline measures the engine alone in this process, before and after the load (the platform idle): the model directory --model
            (default: the shipped fashion-clip-small) with its prompt artifact's settings, batches of --batch on
            --engine-threads threads with --threads torch threads; give the values the platform's engine runs with
            (Tapt:Engine:MaxBatchSize, Threads, TorchThreads). The overhead is 1 - platform img/s / engine img/s (both runs);
            the CPU overhead 1 - engine CPU per image / platform CPU per image.
            --json prints the report as JSON instead of the table; --json-file FILE also writes it to FILE.
            Exit code 0 when nothing was lost or duplicated and every job finished, 1 otherwise.
            """)
        {
            server, operatorKey, tenants, duration, images, jobsPerTenant, drain, warmup, prefix, platformModel, pids, baseline, baselineImages,
            model, batch, engineThreads, threads, json, jsonFile,
        };
        command.SetAction(r =>
        {
            var serverText = r.GetValue(server)!;
            if (!Uri.TryCreate(serverText.EndsWith('/') ? serverText : serverText + "/", UriKind.Absolute, out var serverUri) || serverUri.Scheme is not ("http" or "https"))
                throw new CliException($"--server must be an http(s) URL, got '{serverText}'");
            var settings = new LoadSettings(serverUri, r.GetValue(operatorKey)!, r.GetValue(tenants), TimeSpan.FromSeconds(r.GetValue(duration)),
                r.GetValue(images), r.GetValue(jobsPerTenant), TimeSpan.FromSeconds(r.GetValue(drain)), r.GetValue(prefix)!, r.GetValue(platformModel)!,
                r.GetValue(pids) ?? [], TimeSpan.FromSeconds(r.GetValue(warmup)));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var withBaseline = r.GetValue(baseline);
            var engine = new Engine(withBaseline, r.GetValue(baselineImages), r.GetValue(batch), r.GetValue(engineThreads),
                withBaseline ? ModelLocator.Resolve(r.GetValue(model)) : r.GetValue(model));
            return Execute(settings, engine, r.GetValue(json), r.GetValue(jsonFile));
        });
        return command;
    }

    private static int Execute(LoadSettings settings, Engine engineSetup, bool json, string? jsonFile)
    {
        var (baseline, baselineImages, batch, engineThreads, modelDir) = engineSetup;
        if (!System.Text.RegularExpressions.Regex.IsMatch(settings.TenantPrefix, "^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$"))
            throw new CliException("--tenant-prefix: 1-20 lower-case letters, digits and inner hyphens");

        var pngs = FashionPngs(Math.Max(256, settings.ImagesPerJob));
        RememberLabels(settings.Pids);
        // The engine alone before and after the load, so a change in the machine's other load shows (it is shared).
        BaselineResult? before = null;
        if (baseline) before = EngineBaseline.Measure(modelDir!, pngs, Labels, baselineImages, batch, engineThreads, Console.Error);

        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        LoadReport report;
        try
        {
            report = new LoadRun(settings, pngs, Console.Error).RunAsync(cts.Token).GetAwaiter().GetResult();
        }
        catch (GatewayException e)
        {
            Console.Error.WriteLine($"tapt loadtest: {e.Message}");
            return 1;
        }
        EngineRuns? engine = null;
        if (before is not null)
            engine = new EngineRuns(before, EngineBaseline.Measure(modelDir!, pngs, Labels, baselineImages, batch, engineThreads, Console.Error));
        var document = ToJson(settings, report, engine).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        if (jsonFile is not null) File.WriteAllText(jsonFile, document + "\n");
        if (json) Console.WriteLine(document);
        else PrintTable(Console.Out, settings, report, engine);
        return report.Lost == 0 && report.Duplicates == 0 && report.UnfinishedJobs == 0 && report.LiveDuplicates == 0 && report.Errors == 0 ? 0 : 1;
    }

    /// <summary>The first <paramref name="count"/> Fashion-MNIST test images as 28×28 RGB PNGs.</summary>
    public static List<byte[]> FashionPngs(int count)
    {
        LabelledImages d;
        try { d = FashionMnist.Load("test"); }
        catch (DatasetException e) { throw new CliException(e.Message); }
        return Enumerable.Range(0, Math.Min(count, d.Count)).Select(d.EncodePng).ToList();
    }

    /// <summary>A short name for a process: its .dll or azurite, from /proc/PID/cmdline (saved at the start of the run).</summary>
    private static string ProcessLabel(int pid) => ProcessNames.GetValueOrDefault(pid, "process");

    private static readonly Dictionary<int, string> ProcessNames = [];

    private static void RememberLabels(IEnumerable<int> pids)
    {
        foreach (var pid in pids)
        {
            try
            {
                var args = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
                ProcessNames[pid] = args.FirstOrDefault(x => x.EndsWith(".dll", StringComparison.Ordinal)) is { } dll ? Path.GetFileNameWithoutExtension(dll)
                    : args.Any(x => x.Contains("azurite", StringComparison.Ordinal)) ? "Azurite" : Path.GetFileName(args.FirstOrDefault() ?? "process");
            }
            catch (IOException)
            {
                // gone already: shown as "process"
            }
        }
    }

    private static string F(double v, string format = "0.0") => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);

    private static void PrintTable(TextWriter w, LoadSettings s, LoadReport r, EngineRuns? engine)
    {
        var warmup = s.Warmup > TimeSpan.Zero ? FormattableString.Invariant($" after {s.Warmup.TotalSeconds:0} s of warm-up") : "";
        w.WriteLine(FormattableString.Invariant(
            $"load: {s.Tenants} tenants x {s.JobsPerTenant} job(s) at a time, {s.ImagesPerJob} images per job, {s.Duration.TotalSeconds:0} s of submissions (+ drain){warmup}"));
        var rows = new List<IReadOnlyList<string>>
        {
            new[] { "jobs started / finished / unfinished", $"{r.JobsStarted} / {r.JobsFinished} / {r.UnfinishedJobs}" },
            new[] { "images submitted / results", $"{r.ImagesSubmitted} / {r.Results}" },
            new[] { "lost / duplicate results (REST)", $"{r.Lost} / {r.Duplicates}" },
            new[] { "failed results (error)", r.FailedResults.ToString(CultureInfo.InvariantCulture) },
            new[] { "results missing live / duplicate live events", $"{r.LiveMissing} / {r.LiveDuplicates}" },
            new[] { "throughput, whole run (img/s)", F(r.ImagesPerSecond, "0.00") + FormattableString.Invariant($"  ({r.Results} in {r.Seconds:0.0} s)") },
            new[] { "throughput, submission window (img/s)", F(r.WindowImagesPerSecond, "0.00") },
            new[] { "latency upload start -> result event (s) p50/p95/p99", $"{F(r.Latency.P50, "0.00")} / {F(r.Latency.P95, "0.00")} / {F(r.Latency.P99, "0.00")}  (max {F(r.Latency.Max, "0.00")})" },
            new[] { "SignalR delivery, gateway -> client (ms) p50/p95/p99", $"{F(r.Delivery.P50)} / {F(r.Delivery.P95)} / {F(r.Delivery.P99)}  (max {F(r.Delivery.Max)})" },
            new[] { "result recorded -> client (ms) p50/p95/p99", $"{F(r.RecordedToClient.P50)} / {F(r.RecordedToClient.P95)} / {F(r.RecordedToClient.P99)}" },
            new[] { "client errors (see stderr)", r.Errors.ToString(CultureInfo.InvariantCulture) },
            new[] { "429 responses", r.TooMany.Count == 0 ? "0" : string.Join(", ", r.TooMany.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}")) },
        };
        foreach (var (pid, m) in r.Memory.OrderBy(kv => kv.Key))
            rows.Add(new[] { $"{ProcessLabel(pid)} (pid {pid}) memory MiB start / peak / end", $"{F(m.StartMiB, "0")} / {F(m.PeakMiB, "0")} / {F(m.EndMiB, "0")}" +
                (r.CpuSeconds.TryGetValue(pid, out var cpu) ? FormattableString.Invariant($"; CPU {cpu:0.0} s") : "") });
        rows.Add(new[] { "CPU per image (ms): platform processes / load client", $"{F(r.PlatformCpuMsPerImage, "0")} / {F(r.ClientCpuMsPerImage, "0")}" });
        if (!double.IsNaN(r.TuningCpuMsPerImage))
            rows.Add(new[] { "CPU per image (ms): platform's engine threads / the rest", FormattableString.Invariant(
                $"{r.TuningCpuMsPerImage:0.0} / {r.NonEngineCpuMsPerImage:0.0}  (rest = {100 * r.NonEngineCpuMsPerImage / r.TuningCpuMsPerImage:0.0}% of the engine threads)") });
        if (r.GatewayRuntime is { } rt && r.Results > 0)
            // The runtime times JIT compilation by the clock: on contended cores that is more than its CPU time.
            rows.Add(new[] { "gateway process: methods JIT-compiled / JIT time / GC pauses", FormattableString.Invariant(
                $"{rt.MethodsCompiled:0} / {rt.JitSeconds:0.0} s / {rt.GcPauseSeconds:0.00} s  (elapsed, not CPU time)") });
        if (engine is not null)
        {
            var e = engine.Before;
            rows.Add(new[] { "engine alone, before / after the load (img/s)", FormattableString.Invariant(
                $"{e.ImagesPerSecond:0.00} / {engine.After.ImagesPerSecond:0.00}  ({e.Model} {e.Design}, {e.Views} views, {e.Steps} step, batch {e.Batch}, {e.EngineThreads} thread(s), torch {e.TorchThreads})") });
            rows.Add(new[] { "engine alone, both runs (img/s)", FormattableString.Invariant($"{engine.ImagesPerSecond:0.00}") });
            rows.Add(new[] { "platform overhead 1 - platform/engine", FormattableString.Invariant($"{100 * engine.Overhead(r.ImagesPerSecond):0.0}%") });
            rows.Add(new[] { "CPU per image (ms): engine alone", F(engine.CpuMsPerImage, "0") });
            rows.Add(new[] { "CPU overhead 1 - engine/platform CPU per image", double.IsNaN(r.PlatformCpuMsPerImage) ? "-" :
                FormattableString.Invariant($"{100 * (1 - engine.CpuMsPerImage / r.PlatformCpuMsPerImage):0.0}%") });
        }
        TextTable.Write(w, ["measure", "value"], rows);
    }

    private static JsonObject ToJson(LoadSettings s, LoadReport r, EngineRuns? engine)
    {
        static JsonObject P(Percentiles p) => new() { ["p50"] = N(p.P50), ["p95"] = N(p.P95), ["p99"] = N(p.P99), ["max"] = N(p.Max), ["samples"] = p.Count };
        static JsonNode? N(double v) => double.IsNaN(v) ? null : JsonValue.Create(Math.Round(v, 4));
        var o = new JsonObject
        {
            ["settings"] = new JsonObject
            {
                ["server"] = s.Server.ToString(),
                ["tenants"] = s.Tenants,
                ["jobsPerTenant"] = s.JobsPerTenant,
                ["imagesPerJob"] = s.ImagesPerJob,
                ["durationSeconds"] = s.Duration.TotalSeconds,
                ["warmupSeconds"] = s.Warmup.TotalSeconds,
                ["platformModel"] = s.PlatformModel,
            },
            ["jobsStarted"] = r.JobsStarted,
            ["jobsFinished"] = r.JobsFinished,
            ["unfinishedJobs"] = r.UnfinishedJobs,
            ["imagesSubmitted"] = r.ImagesSubmitted,
            ["results"] = r.Results,
            ["lost"] = r.Lost,
            ["duplicates"] = r.Duplicates,
            ["failedResults"] = r.FailedResults,
            ["liveMissing"] = r.LiveMissing,
            ["liveDuplicates"] = r.LiveDuplicates,
            ["resyncs"] = r.Resyncs,
            ["errors"] = r.Errors,
            ["seconds"] = Math.Round(r.Seconds, 3),
            ["imagesPerSecond"] = N(r.ImagesPerSecond),
            ["windowImagesPerSecond"] = N(r.WindowImagesPerSecond),
            ["latencySeconds"] = P(r.Latency),
            ["deliveryMs"] = P(r.Delivery),
            ["recordedToClientMs"] = P(r.RecordedToClient),
            ["tooManyRequests"] = new JsonObject(r.TooMany.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["cpuSeconds"] = new JsonObject(r.CpuSeconds.OrderBy(kv => kv.Key).Select(kv => KeyValuePair.Create(kv.Key.ToString(CultureInfo.InvariantCulture), N(kv.Value)))),
            ["clientCpuSeconds"] = N(r.ClientCpuSeconds),
            ["platformCpuMsPerImage"] = N(r.PlatformCpuMsPerImage),
            ["clientCpuMsPerImage"] = N(r.ClientCpuMsPerImage),
            ["tuningThreadCpuSeconds"] = new JsonObject(r.TuningCpuSeconds.OrderBy(kv => kv.Key).Select(kv => KeyValuePair.Create(kv.Key.ToString(CultureInfo.InvariantCulture), N(kv.Value)))),
            ["tuningThreadCpuMsPerImage"] = N(r.TuningCpuMsPerImage),
            ["nonEngineCpuMsPerImage"] = N(r.NonEngineCpuMsPerImage),
            ["gatewayRuntime"] = r.GatewayRuntime is { } rt ? new JsonObject
            {
                ["jitSeconds"] = N(rt.JitSeconds),
                ["methodsCompiled"] = N(rt.MethodsCompiled),
                ["gcPauseSeconds"] = N(rt.GcPauseSeconds),
            } : null,
            ["memory"] = new JsonObject(r.Memory.OrderBy(kv => kv.Key).Select(kv => KeyValuePair.Create(kv.Key.ToString(CultureInfo.InvariantCulture), (JsonNode?)new JsonObject
            {
                ["name"] = ProcessLabel(kv.Key),
                ["startMiB"] = N(kv.Value.StartMiB),
                ["peakMiB"] = N(kv.Value.PeakMiB),
                ["endMiB"] = N(kv.Value.EndMiB),
            }))),
        };
        if (engine is not null)
        {
            static JsonObject Run(BaselineResult e) => new()
            {
                ["images"] = e.Images,
                ["seconds"] = Math.Round(e.Seconds, 3),
                ["imagesPerSecond"] = N(e.ImagesPerSecond),
                ["cpuSeconds"] = N(e.CpuSeconds),
            };
            var b = engine.Before;
            o["engine"] = new JsonObject
            {
                ["model"] = b.Model,
                ["design"] = b.Design,
                ["views"] = b.Views,
                ["steps"] = b.Steps,
                ["batch"] = b.Batch,
                ["engineThreads"] = b.EngineThreads,
                ["torchThreads"] = b.TorchThreads,
                ["before"] = Run(b),
                ["after"] = Run(engine.After),
                ["imagesPerSecond"] = N(engine.ImagesPerSecond),
                ["cpuMsPerImage"] = N(engine.CpuMsPerImage),
            };
            o["overhead"] = N(engine.Overhead(r.ImagesPerSecond));
            o["cpuOverhead"] = N(1 - engine.CpuMsPerImage / r.PlatformCpuMsPerImage);
        }
        return o;
    }
}

public sealed record LoadSettings(Uri Server, string OperatorKey, int Tenants, TimeSpan Duration, int ImagesPerJob, int JobsPerTenant,
    TimeSpan Drain, string TenantPrefix, string PlatformModel, IReadOnlyList<int> Pids, TimeSpan Warmup = default);

/// <summary>Nearest-rank percentiles of a sample (NaN when empty).</summary>
public sealed record Percentiles(double P50, double P95, double P99, double Max, int Count)
{
    public static Percentiles Of(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        if (v.Length == 0) return new(double.NaN, double.NaN, double.NaN, double.NaN, 0);
        double At(double q) => v[Math.Clamp((int)Math.Ceiling(q * v.Length) - 1, 0, v.Length - 1)];
        return new(At(0.50), At(0.95), At(0.99), v[^1], v.Length);
    }
}

/// <summary>The engine alone before and after the load; its rate is over both runs together.</summary>
public sealed record EngineRuns(BaselineResult Before, BaselineResult After)
{
    public double ImagesPerSecond => (Before.Images + After.Images) / (Before.Seconds + After.Seconds);

    public double CpuMsPerImage => 1000 * (Before.CpuSeconds + After.CpuSeconds) / (Before.Images + After.Images);

    /// <summary>1 − platform ÷ engine: the share of the engine's throughput the platform does not deliver.</summary>
    public double Overhead(double platformImagesPerSecond) => 1 - platformImagesPerSecond / ImagesPerSecond;
}

public sealed record MemoryUse(double StartMiB, double PeakMiB, double EndMiB);

/// <summary>Cumulative .NET runtime totals of one process (seconds of JIT compilation and of GC pauses, methods compiled).</summary>
public sealed record RuntimeTotals(double JitSeconds, double GcPauseSeconds, double MethodsCompiled)
{
    public static RuntimeTotals operator -(RuntimeTotals end, RuntimeTotals start) =>
        new(end.JitSeconds - start.JitSeconds, end.GcPauseSeconds - start.GcPauseSeconds, end.MethodsCompiled - start.MethodsCompiled);
}

public sealed record LoadReport(
    int JobsStarted, int JobsFinished, int UnfinishedJobs, int ImagesSubmitted, int Results, int Lost, int Duplicates, int FailedResults,
    int LiveMissing, int LiveDuplicates, int Resyncs, double Seconds, double ImagesPerSecond, double WindowImagesPerSecond,
    Percentiles Latency, Percentiles Delivery, Percentiles RecordedToClient, IReadOnlyDictionary<string, int> TooMany,
    IReadOnlyDictionary<int, MemoryUse> Memory, int Errors, IReadOnlyDictionary<int, double> CpuSeconds, double ClientCpuSeconds,
    IReadOnlyDictionary<int, double> TuningCpuSeconds)
{
    /// <summary>CPU milliseconds per result of the watched processes (the platform), or NaN without any.</summary>
    public double PlatformCpuMsPerImage => CpuSeconds.Count == 0 || Results == 0 ? double.NaN : 1000 * CpuSeconds.Values.Sum() / Results;

    /// <summary>Of <see cref="PlatformCpuMsPerImage"/>, the TAPT engine's own threads (NaN when no watched process has any).</summary>
    public double TuningCpuMsPerImage => TuningCpuSeconds.Count == 0 || Results == 0 ? double.NaN : 1000 * TuningCpuSeconds.Values.Sum() / Results;

    /// <summary>The platform's CPU per image besides its engine threads: gateway, grains, storage clients, Azurite, JIT, GC.</summary>
    public double NonEngineCpuMsPerImage => PlatformCpuMsPerImage - TuningCpuMsPerImage;

    /// <summary>JIT compilation and GC pauses of the gateway's process during the load (its /metrics), when it serves them.</summary>
    public RuntimeTotals? GatewayRuntime { get; init; }

    public double ClientCpuMsPerImage => Results == 0 ? double.NaN : 1000 * ClientCpuSeconds / Results;
}
