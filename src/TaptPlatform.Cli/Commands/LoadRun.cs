using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Polly;

namespace TaptPlatform.Cli.Commands;

/// <summary>The hub's <c>imagesCompleted</c> event, as far as the load test reads it.</summary>
public sealed record ImageCompletedInfo(string JobId, LiveResultInfo Result, DateTimeOffset ServerTime);

public sealed record LiveResultInfo(int Index, string? Error, DateTimeOffset CompletedAt);

/// <summary>One run of <c>tapt loadtest</c> against a gateway (see <see cref="LoadTestCommand"/>).</summary>
public sealed class LoadRun(LoadSettings settings, IReadOnlyList<byte[]> pngs, TextWriter log)
{
    private readonly ConcurrentDictionary<string, int> _tooMany = new(StringComparer.Ordinal);
    private GatewayHttp? _gateway;
    private HttpClient _http = null!;
    private readonly ConcurrentQueue<JobRun> _jobs = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private int _nextJob;

    private sealed class Tenant(string id, string key)
    {
        public string Id { get; } = id;
        public string Key { get; } = key;
        public HubConnection Hub { get; set; } = null!;
        public ConcurrentDictionary<string, JobRun> Jobs { get; } = new(StringComparer.Ordinal);
        public int Resyncs;
    }

    private sealed class JobRun(Tenant tenant, string jobId)
    {
        public Tenant Tenant { get; } = tenant;
        public string JobId { get; } = jobId;
        public DateTimeOffset UploadStart { get; set; }
        public HashSet<int> Accepted { get; set; } = [];
        public bool Started { get; set; }

        /// <summary>Image index → (arrival, the gateway's send time, the job's record time) of its first live result.</summary>
        public ConcurrentDictionary<int, (DateTimeOffset Received, DateTimeOffset Server, DateTimeOffset Recorded)> Live { get; } = new();

        /// <summary>Images whose result came in a snapshot after a resync instead of live.</summary>
        public ConcurrentDictionary<int, bool> FromSnapshot { get; } = new();

        public int LiveDuplicates;
        public TaskCompletionSource AllReceived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void CheckAll()
        {
            if (Accepted.Count > 0 && Accepted.All(i => Live.ContainsKey(i) || FromSnapshot.ContainsKey(i))) AllReceived.TrySetResult();
        }
    }

    public async Task<LoadReport> RunAsync(CancellationToken ct)
    {
        // Every 429 is counted by its code where it arrives, each retry's too; the pipeline waits them out until the request's deadline.
        _gateway = new GatewayHttp(settings.Server, GatewayRetry.UntilDeadline, () => new SocketsHttpHandler { MaxConnectionsPerServer = 512 },
            () => new TooManyRequestsCounter(_tooMany));
        _http = _gateway.Client;
        var runId = Guid.NewGuid().ToString("N")[..6];
        log.WriteLine($"setting up {settings.Tenants} tenants ({settings.TenantPrefix}-{runId}-N) on {settings.Server}");
        using var setupGate = new SemaphoreSlim(4);
        var tenants = await Task.WhenAll(Enumerable.Range(0, settings.Tenants).Select(async i =>
        {
            await setupGate.WaitAsync(ct);
            try { return await SetupTenantAsync($"{settings.TenantPrefix}-{runId}-{i.ToString(CultureInfo.InvariantCulture)}", ct); }
            finally { setupGate.Release(); }
        }));
        foreach (var t in tenants) t.Hub = await ConnectAsync(t, ct);
        using var processes = new ProcessSampler(settings.Pids);
        try
        {
            if (settings.Warmup > TimeSpan.Zero)
            {
                // A freshly started platform JIT-compiles and tiers up its code for a minute or so: not its steady cost.
                log.WriteLine(FormattableString.Invariant($"warm-up: every tenant runs jobs for {settings.Warmup.TotalSeconds:0} s (not counted)"));
                var warmUntil = DateTimeOffset.UtcNow + settings.Warmup;
                await Task.WhenAll(tenants.Select(async t =>
                {
                    while (DateTimeOffset.UtcNow < warmUntil && !ct.IsCancellationRequested)
                        await RunJobAsync(t, settings.ImagesPerJob, warmUntil + settings.Drain, counted: false, ct);
                }));
            }
            else
            {
                log.WriteLine("warm-up job (not counted)");
                await RunJobAsync(tenants[0], Math.Min(8, settings.ImagesPerJob), DateTimeOffset.UtcNow.AddMinutes(5), counted: false, ct);
            }

            var t0 = DateTimeOffset.UtcNow;
            var runtimeStart = await GatewayRuntimeAsync(ct);
            processes.MarkStart();
            var submitUntil = t0 + settings.Duration;
            var drainUntil = submitUntil + settings.Drain;
            log.WriteLine(FormattableString.Invariant($"submitting for {settings.Duration.TotalSeconds:0} s, then draining (at most {settings.Drain.TotalSeconds:0} s)"));
            var workers = tenants.SelectMany(t => Enumerable.Range(0, settings.JobsPerTenant).Select(async _ =>
            {
                try
                {
                    while (DateTimeOffset.UtcNow < submitUntil && !ct.IsCancellationRequested)
                        await RunJobAsync(t, settings.ImagesPerJob, drainUntil, counted: true, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _errors.Enqueue($"tenant {t.Id}: {e.GetType().Name}: {e.Message}");
                }
            })).ToList();
            using (new LoadProgress(log, submitUntil, settings.Duration, () => (_jobs.Count, _jobs.Sum(j => j.Live.Count), _jobs.Sum(j => j.Accepted.Count))))
                await Task.WhenAll(workers);
            var finished = DateTimeOffset.UtcNow;
            var usage = processes.Stop();
            var runtimeEnd = await GatewayRuntimeAsync(ct);
            usage = usage with { GatewayRuntime = runtimeStart is null || runtimeEnd is null ? null : runtimeEnd - runtimeStart };
            log.WriteLine("verifying every result through the REST API");
            return await ReportAsync(tenants, t0, submitUntil, finished, usage, ct);
        }
        finally
        {
            foreach (var t in tenants) await t.Hub.DisposeAsync();
            _gateway.Dispose();
            foreach (var e in _errors.Take(10)) log.WriteLine($"error: {e}");
        }
    }

    // ---- one job --------------------------------------------------------------------------------------------------

    private async Task RunJobAsync(Tenant t, int images, DateTimeOffset deadline, bool counted, CancellationToken ct)
    {
        var created = await SendAsync(t.Key, () => new HttpRequestMessage(HttpMethod.Post, "api/jobs")
        {
            Content = JsonContent.Create(new { vocabulary = "fashion", promptConfiguration = "default" }),
        }, deadline, ct);
        var job = new JobRun(t, created.GetProperty("jobId").GetString()!);
        t.Jobs[job.JobId] = job;
        try
        {
            // Subscribed before the upload: no event can come before the subscription.
            await t.Hub.InvokeAsync<JsonElement>("Subscribe", job.JobId, ct);
            var first = Interlocked.Add(ref _nextJob, 1) * images;
            job.UploadStart = DateTimeOffset.UtcNow;
            var receipt = await SendAsync(t.Key, () =>
            {
                var content = new MultipartFormDataContent();
                for (var i = 0; i < images; i++)
                {
                    var n = (first + i) % pngs.Count;
                    var part = new ByteArrayContent(pngs[n]);
                    part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                    content.Add(part, "images", $"fashion-test-{n.ToString(CultureInfo.InvariantCulture)}.png");
                }
                return new HttpRequestMessage(HttpMethod.Post, $"api/jobs/{job.JobId}/images") { Content = content };
            }, deadline, ct);
            job.Accepted = receipt.GetProperty("accepted").EnumerateArray().Select(a => a.GetProperty("index").GetInt32()).ToHashSet();
            if (counted) _jobs.Enqueue(job);
            try
            {
                await SendAsync(t.Key, () => new HttpRequestMessage(HttpMethod.Post, $"api/jobs/{job.JobId}/start"), deadline, ct);
                job.Started = true;
            }
            catch (DeadlineException)
            {
                return;   // refused (429) until the deadline: the job stays open with its images, reported as unfinished
            }
            job.CheckAll();
            while (!job.AllReceived.Task.IsCompleted && DateTimeOffset.UtcNow < deadline)
            {
                await Task.WhenAny(job.AllReceived.Task, Task.Delay(TimeSpan.FromSeconds(5), ct));
                if (job.AllReceived.Task.IsCompleted) break;
                // A safety net, not the measurement: a job that is final on the server gets a moment for its last events.
                var status = await SendAsync(t.Key, () => new HttpRequestMessage(HttpMethod.Get, $"api/jobs/{job.JobId}"), deadline, ct);
                if (status.GetProperty("state").GetString() is "completed" or "cancelled")
                {
                    await Task.WhenAny(job.AllReceived.Task, Task.Delay(TimeSpan.FromSeconds(2), ct));
                    break;
                }
            }
        }
        finally
        {
            if (t.Hub.State == HubConnectionState.Connected)
            {
                try { await t.Hub.InvokeAsync("Unsubscribe", job.JobId, ct); }
                catch (Exception e) when (e is not OperationCanceledException) { _errors.Enqueue($"unsubscribe {job.JobId}: {e.Message}"); }
            }
            if (!counted) t.Jobs.TryRemove(job.JobId, out _);
        }
    }

    // ---- tenants and hubs -----------------------------------------------------------------------------------------

    private async Task<Tenant> SetupTenantAsync(string id, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow.AddMinutes(2);
        var created = await SendAsync(settings.OperatorKey, () => new HttpRequestMessage(HttpMethod.Post, "api/tenants")
        {
            Content = JsonContent.Create(new { id, keyName = "loadtest" }),
        }, deadline, ct);
        var t = new Tenant(id, created.GetProperty("key").GetProperty("secret").GetString()!);
        await SendAsync(t.Key, () => new HttpRequestMessage(HttpMethod.Post, "api/vocabularies")
        {
            Content = JsonContent.Create(new { name = "fashion", labels = LoadTestCommand.Labels }),
        }, deadline, ct);
        await SendAsync(t.Key, () => new HttpRequestMessage(HttpMethod.Post, "api/prompt-configurations")
        {
            // The artifact's own test-time settings (design, views, steps, lr); flags as run.sh's default configuration.
            Content = JsonContent.Create(new
            {
                name = "default",
                model = settings.PlatformModel,
                flagging = new { minimumConfidence = 0.5, flagChangedPrediction = true, flagCloserToAttacked = false },
            }),
        }, deadline, ct);
        return t;
    }

    private async Task<HubConnection> ConnectAsync(Tenant t, CancellationToken ct)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(settings.Server, "hubs/jobs"), o => o.Headers["X-Api-Key"] = t.Key)
            .Build();
        hub.On<ImageCompletedInfo[]>("imagesCompleted", batch =>
        {
            var received = DateTimeOffset.UtcNow;
            foreach (var e in batch)
            {
                if (!t.Jobs.TryGetValue(e.JobId, out var job)) continue;
                if (!job.Live.TryAdd(e.Result.Index, (received, e.ServerTime, e.Result.CompletedAt))) Interlocked.Increment(ref job.LiveDuplicates);
                job.CheckAll();
            }
        });
        hub.On<JsonElement>("resync", async r =>
        {
            // Live results were dropped for this connection: the snapshot has them (without an arrival time to measure).
            var jobId = r.GetProperty("jobId").GetString()!;
            if (!t.Jobs.TryGetValue(jobId, out var job)) return;
            Interlocked.Increment(ref t.Resyncs);
            var snapshot = await hub.InvokeAsync<JsonElement>("Subscribe", jobId);
            foreach (var result in snapshot.GetProperty("results").EnumerateArray())
            {
                var index = result.GetProperty("index").GetInt32();
                if (!job.Live.ContainsKey(index)) job.FromSnapshot.TryAdd(index, true);
            }
            job.CheckAll();
        });
        await hub.StartAsync(ct);
        return hub;
    }

    // ---- HTTP -----------------------------------------------------------------------------------------------------

    private sealed class DeadlineException(string message) : Exception(message);

    /// <summary>Sends a request with the tenant's key; the pipeline waits out 429s (see <see cref="GatewayHttp"/>) until <paramref name="deadline"/>.</summary>
    private async Task<JsonElement> SendAsync(string key, Func<HttpRequestMessage> request, DateTimeOffset deadline, CancellationToken ct)
    {
        using var message = request();
        message.Headers.Add("X-Api-Key", key);
        message.Options.Set(GatewayHttp.Deadline, deadline);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, ct);
        }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"cannot reach {settings.Server}: {e.Message}");
        }
        catch (ExecutionRejectedException e)
        {
            throw new GatewayException($"{message.Method} {message.RequestUri}: {e.Message}");
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            // Still refused: the deadline came first (or, for an upload, a quota that a retry cannot wait out).
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
                throw new DeadlineException($"{message.RequestUri}: still 429 ({ProblemCode(body) ?? "429"}) at the deadline");
            if (!response.IsSuccessStatusCode)
                throw new GatewayException($"{message.Method} {message.RequestUri}: {(int)response.StatusCode} {ProblemCode(body)} {Shorten(body)}");
            return JsonDocument.Parse(body).RootElement.Clone();
        }
    }

    /// <summary>Counts every 429 answer by its problem code.</summary>
    private sealed class TooManyRequestsCounter(ConcurrentDictionary<string, int> counts) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
                counts.AddOrUpdate(await GatewayHttp.ProblemCodeAsync(response, cancellationToken) ?? "429", 1, (_, n) => n + 1);
            return response;
        }
    }

    private static string? ProblemCode(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.TryGetProperty("code", out var c) ? c.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Shorten(string s) => s.Length <= 300 ? s : s[..300] + "…";

    // ---- the report -----------------------------------------------------------------------------------------------

    /// <summary>
    /// The gateway process's JIT and GC totals from its Prometheus <c>/metrics</c> (the .NET runtime's meter), or null
    /// when it does not serve them. In the all-in-one mode that process is also the silo and the engine.
    /// </summary>
    private async Task<RuntimeTotals?> GatewayRuntimeAsync(CancellationToken ct)
    {
        try
        {
            // /metrics is the operator's: it names every tenant.
            using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
            request.Headers.Add("X-Api-Key", settings.OperatorKey);
            using var response = await _http.SendAsync(request, ct);
            if (!response.IsSuccessStatusCode) return null;
            var text = await response.Content.ReadAsStringAsync(ct);
            double? Value(string name)
            {
                foreach (var line in text.AsSpan().EnumerateLines())
                {
                    if (!line.StartsWith(name) || line.Length <= name.Length || line[name.Length] is not ('{' or ' ')) continue;
                    var space = line.LastIndexOf(' ');
                    if (double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) return v;
                }
                return null;
            }
            return Value("dotnet_jit_compilation_time_seconds_total") is { } jit && Value("dotnet_gc_pause_time_seconds_total") is { } gc
                ? new RuntimeTotals(jit, gc, Value("dotnet_jit_compiled_methods_total") ?? double.NaN)
                : null;
        }
        catch (Exception e) when (e is HttpRequestException or ExecutionRejectedException)
        {
            return null;
        }
    }

    private async Task<LoadReport> ReportAsync(Tenant[] tenants, DateTimeOffset t0, DateTimeOffset submitUntil, DateTimeOffset finished,
        ProcessUsage usage, CancellationToken ct)
    {
        var jobs = _jobs.ToList();
        int started = 0, done = 0, unfinished = 0, submitted = 0, results = 0, lost = 0, duplicates = 0, failed = 0, liveMissing = 0, liveDuplicates = 0;
        var latency = new List<double>();
        var delivery = new List<double>();
        var recorded = new List<double>();
        var last = t0;
        var inWindow = 0;
        var verifyDeadline = DateTimeOffset.UtcNow.AddMinutes(5);
        foreach (var job in jobs)
        {
            submitted += job.Accepted.Count;
            liveDuplicates += job.LiveDuplicates;
            if (job.Started) started++;
            var status = await SendAsync(job.Tenant.Key, () => new HttpRequestMessage(HttpMethod.Get, $"api/jobs/{job.JobId}"), verifyDeadline, ct);
            if (status.GetProperty("state").GetString() != "completed")
            {
                unfinished++;
                continue;
            }
            done++;
            // Every result of the job, through the REST API: each accepted image exactly once.
            var seen = new Dictionary<int, int>();
            int? offset = 0;
            while (offset is { } o)
            {
                var page = await SendAsync(job.Tenant.Key, () => new HttpRequestMessage(HttpMethod.Get,
                    $"api/jobs/{job.JobId}/results?offset={o.ToString(CultureInfo.InvariantCulture)}&limit=1000"), verifyDeadline, ct);
                foreach (var r in page.GetProperty("items").EnumerateArray())
                {
                    var index = r.GetProperty("index").GetInt32();
                    seen[index] = seen.GetValueOrDefault(index) + 1;
                    if (r.TryGetProperty("error", out var err) && err.ValueKind == JsonValueKind.String) failed++;
                }
                offset = page.TryGetProperty("nextOffset", out var next) && next.ValueKind == JsonValueKind.Number && next.GetInt32() > o ? next.GetInt32() : null;
            }
            results += seen.Count;
            lost += job.Accepted.Count(i => !seen.ContainsKey(i));
            duplicates += seen.Values.Sum(n => n - 1) + seen.Keys.Count(i => !job.Accepted.Contains(i));   // twice, or for an image never sent
            foreach (var index in seen.Keys)
            {
                if (!job.Live.TryGetValue(index, out var live))
                {
                    if (!job.FromSnapshot.ContainsKey(index)) liveMissing++;
                    continue;
                }
                latency.Add((live.Received - job.UploadStart).TotalSeconds);
                delivery.Add((live.Received - live.Server).TotalMilliseconds);
                recorded.Add((live.Received - live.Recorded).TotalMilliseconds);
                if (live.Received > last) last = live.Received;
                if (live.Received <= submitUntil) inWindow++;
            }
        }
        if (last == t0) last = finished;
        var seconds = (last - t0).TotalSeconds;
        var windowSeconds = (submitUntil - t0).TotalSeconds;
        return new LoadReport(started, done, unfinished, submitted, results, lost, duplicates, failed, liveMissing, liveDuplicates,
            tenants.Sum(t => t.Resyncs), seconds, results / seconds, inWindow / windowSeconds,
            Percentiles.Of(latency), Percentiles.Of(delivery), Percentiles.Of(recorded),
            new Dictionary<string, int>(_tooMany), usage.Memory, _errors.Count, usage.CpuSeconds, usage.ClientCpuSeconds, usage.TuningCpuSeconds)
        {
            GatewayRuntime = usage.GatewayRuntime,
        };
    }
}
