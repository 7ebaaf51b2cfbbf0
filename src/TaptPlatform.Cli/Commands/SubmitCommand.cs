using System.CommandLine;
using System.Globalization;
using Microsoft.AspNetCore.SignalR.Client;
using TaptPlatform.Cli.Progress;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt submit</c>: uploads a folder of images to a gateway as one job, starts it, and with <c>--watch</c> follows
/// it live over the SignalR hub (a progress bar) and prints the results table.
/// </summary>
public static class SubmitCommand
{
    public static Command Create()
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var key = CliOptions.Required("--key", "the tenant's API key", "KEY");
        var vocabulary = CliOptions.Required("--vocabulary", "the vocabulary's name", "NAME");
        var config = CliOptions.Defaulted("--config", "default", "the prompt configuration's name", "NAME");
        var name = CliOptions.Text("--name", "the job's name", "JOB_NAME");
        var seed = CliOptions.Int("--seed", 0, "the job's seed of the TAPT views");
        var batch = CliOptions.Int("--batch", 200, "images per upload request", 1, 1000);
        var watch = CliOptions.Flag("--watch", "follow the job live, then print its results");
        var timeout = CliOptions.Int("--timeout", 3600, "seconds to wait at most", 1, int.MaxValue, "SECONDS");
        var images = new Argument<string[]>("images")
        {
            Description = "a folder of images, or image files",
            HelpName = "IMAGES_DIR|IMAGE",
            Arity = ArgumentArity.OneOrMore,
        };
        var command = new Command("submit", """
            Uploads a folder of images to a gateway as a job and starts it.
            Creates a job (vocabulary NAME, prompt configuration --config, default "default"), uploads every image of the
            folder (png, jpg, jpeg, webp, bmp, gif; --batch images per request), and starts it. Prints the job id.
            --watch follows the job live (progress from the gateway's SignalR hub), then prints the results table;
            it exits 0 when every image succeeded, 1 otherwise. --timeout (default 3600) bounds the wait.
            """)
        {
            server, key, vocabulary, config, name, seed, batch, watch, timeout, images,
        };
        command.SetAction(r =>
        {
            var files = CollectImages(r.GetValue(images) ?? []);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(r.GetValue(timeout)));
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
            try
            {
                return RunAsync(r.GetValue(server)!, r.GetValue(key)!, r.GetValue(vocabulary)!, r.GetValue(config)!, r.GetValue(name), r.GetValue(seed),
                    r.GetValue(batch), r.GetValue(watch), files, Console.Out, Console.Error, cts.Token).GetAwaiter().GetResult();
            }
            catch (GatewayException e)
            {
                Console.Error.WriteLine($"tapt submit: {e.Message}");
                return 1;
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                Console.Error.WriteLine("tapt submit: stopped waiting (the job goes on; see it with GET /api/jobs/{id})");
                return 1;
            }
        });
        return command;
    }

    /// <summary>The image files of the arguments: folders (their images, sorted by name, not recursive) and files.</summary>
    public static List<string> CollectImages(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new CliException("give a folder of images (or image files)");
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p))
                files.AddRange(Directory.EnumerateFiles(p)
                    .Where(f => GatewayClient.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new CliException($"no such file or folder: {p}");
        }
        if (files.Count == 0) throw new CliException("no images found (png, jpg, jpeg, webp, bmp, gif)");
        return files;
    }

    public static async Task<int> RunAsync(string server, string key, string vocabulary, string config, string? name, int seed, int batch,
        bool watch, IReadOnlyList<string> files, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        using var client = new GatewayClient(server, key);
        var job = await client.CreateJobAsync(vocabulary, config, name, seed, ct);
        stderr.WriteLine($"job {job.JobId}: {files.Count} image(s), vocabulary {job.Vocabulary}, configuration {job.PromptConfiguration}, model {job.Model}");
        var rejected = 0;
        for (var i = 0; i < files.Count; i += batch)
        {
            var chunk = files.Skip(i).Take(batch).ToList();
            var receipt = await client.UploadAsync(job.JobId, chunk, ct);
            rejected += receipt.Rejected.Count;
            foreach (var r in receipt.Rejected) stderr.WriteLine($"  rejected: {r}");
            stderr.WriteLine($"  uploaded {Math.Min(i + batch, files.Count)}/{files.Count}");
        }
        if (rejected == files.Count) throw new GatewayException("no image was accepted");

        if (!watch)
        {
            job = await client.StartAsync(job.JobId, ct);
            stdout.WriteLine(job.JobId);
            stderr.WriteLine($"started ({job.State}); follow it with --watch, the console, or GET {client.Server}api/jobs/{job.JobId}");
            return 0;
        }

        // Subscribe before starting, so no progress is missed; the snapshot and a periodic poll cover reconnects.
        var final = await WatchAsync(client, job.JobId, () => client.StartAsync(job.JobId, ct), stderr, ct);
        var results = await client.GetResultsAsync(job.JobId, ct);
        PrintResults(stdout, results);
        var rate = final.ThroughputPerSecond is { } t ? FormattableString.Invariant($" ({t:0.##} images/s)") : "";
        stdout.WriteLine(FormattableString.Invariant(
            $"job {final.JobId} {final.State}: {final.Counts.Succeeded} succeeded, {final.Counts.Failed} failed, {final.Counts.Flagged} flagged of {final.Counts.Total}{rate}"));
        return final.State == "completed" && final.Counts.Failed == 0 ? 0 : 1;
    }

    /// <summary>Follows a job on the hub (progress display on <paramref name="stderr"/>) until it is final; returns its final state.</summary>
    public static async Task<JobInfo> WatchAsync(GatewayClient client, string jobId, Func<Task<JobInfo>> start, TextWriter stderr, CancellationToken ct)
    {
        using var bar = new JobProgress(CliProgress.Start("submit", "images", stderr));
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(client.Server, "hubs/jobs"), o => o.Headers["X-Api-Key"] = client.Key)
            .WithAutomaticReconnect()
            .Build();
        hub.On<JobProgressInfo>("jobProgress", p =>
        {
            if (p.JobId != jobId) return;
            bar.Update(p.Completed, p.Total, p.Flagged, p.ThroughputPerSecond, p.EtaSeconds);
            if (p.IsFinal) done.TrySetResult(true);
        });
        hub.On<ResyncInfo>("resync", async r =>
        {
            if (r.JobId == jobId) await SubscribeAsync(hub, jobId, bar, done);
        });
        hub.Reconnected += async _ => await SubscribeAsync(hub, jobId, bar, done);
        var live = true;
        try
        {
            await hub.StartAsync(ct);
            await SubscribeAsync(hub, jobId, bar, done);
        }
        catch (Exception e) when (e is HttpRequestException or InvalidOperationException or Microsoft.AspNetCore.SignalR.HubException)
        {
            live = false;
            bar.Display.WriteLine($"  live progress unavailable ({e.Message}); polling instead");
        }
        var started = await start();
        bar.Update(started.Counts.Completed, started.Counts.Total, started.Counts.Flagged, started.ThroughputPerSecond, started.EtaSeconds);
        // The hub drives the bar; a slow poll is the safety net (a reconnect gap, a lost final event).
        var poll = TimeSpan.FromSeconds(live ? 5 : 1);
        JobInfo job = started;
        while (!job.IsFinal)
        {
            await Task.WhenAny(done.Task, Task.Delay(poll, ct));
            ct.ThrowIfCancellationRequested();
            job = await client.GetJobAsync(jobId, ct);
            if (!live || job.IsFinal) bar.Update(job.Counts.Completed, job.Counts.Total, job.Counts.Flagged, job.ThroughputPerSecond, job.EtaSeconds);
        }
        return job;
    }

    private static async Task SubscribeAsync(HubConnection hub, string jobId, JobProgress bar, TaskCompletionSource<bool> done)
    {
        var snapshot = await hub.InvokeAsync<JobSnapshotInfo>("Subscribe", jobId);
        var j = snapshot.Job;
        bar.Update(j.Counts.Completed, j.Counts.Total, j.Counts.Flagged, j.ThroughputPerSecond, j.EtaSeconds);
        if (j.IsFinal) done.TrySetResult(true);
    }

    public static void PrintResults(TextWriter w, IReadOnlyList<ResultInfo> results) =>
        TextTable.Write(w, ["#", "image", "TAPT", "conf", "CLIP", "flag"],
            results.Select(r => (IReadOnlyList<string>)
            [
                r.Index.ToString(CultureInfo.InvariantCulture),
                r.Name,
                r.Error is not null ? "error: " + r.Error : r.Label ?? r.Prediction.ToString(CultureInfo.InvariantCulture),
                r.Error is not null ? "" : TextTable.Percent(r.Confidence),
                r.Error is not null ? "" : r.BaselineLabel ?? r.BaselinePrediction.ToString(CultureInfo.InvariantCulture),
                r.Flagged ? string.Join(',', r.Reasons ?? []) is { Length: > 0 } why ? why : "flagged" : "",
            ]));
}

public sealed record ResyncInfo(string JobId, string Reason);

/// <summary>A job's progress on the display: hub events may race the snapshot and the polls, so the furthest count wins.</summary>
public sealed class JobProgress(CliProgress display) : IDisposable
{
    private readonly Lock _gate = new();
    private int _completed = -1;

    public CliProgress Display => display;

    public void Update(int completed, int total, int flagged, double? perSecond, double? eta)
    {
        lock (_gate)
        {
            if (completed < _completed) return;
            _completed = completed;
            var rate = perSecond is { } p ? FormattableString.Invariant($", {p:0.##} img/s") : "";
            var left = eta is { } e && completed < total ? FormattableString.Invariant($", gateway's ETA {e:0}s") : "";
            display.Report(completed, total, $"flagged {flagged}{rate}{left}");
        }
    }

    public void Dispose() => display.Dispose();
}
