using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The per-connection buffer between the event bridge and a SignalR connection, with a sender the test controls.</summary>
public sealed class ConnectionOutboxTests
{
    private const string Job = "job-00000000000000000000000000000001";

    [Fact]
    public async Task Posting_to_a_connection_that_never_reads_returns_at_once_and_keeps_memory_bounded()
    {
        var sender = new GatedSender();   // never released: the connection does not read
        await using var outbox = Outbox(sender, new LiveOptions { StepBufferCapacity = 8, ResultBufferCapacity = 16, SendTimeout = TimeSpan.FromMinutes(10) });
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 20_000; i++) outbox.PostStep(Step(i % 100, i / 100 + 1));
        for (var i = 0; i < 1_000; i++) outbox.PostResult(Result(i));
        for (var i = 0; i < 1_000; i++) outbox.PostProgress(Progress(i));
        clock.Stop();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"posting took {clock.Elapsed}");
        Assert.InRange(outbox.Pending, 1, 8 + 16 + 1 + 1);
        Assert.True(outbox.Coalesced > 19_000);
        Assert.True(outbox.Dropped > 900);
    }

    [Fact]
    public async Task Steps_of_an_image_coalesce_to_its_latest_and_its_final_result_replaces_them()
    {
        var sender = new GatedSender();
        await using var outbox = Outbox(sender, new LiveOptions { StepInterval = TimeSpan.Zero });
        outbox.PostProgress(Progress(0));              // occupies the pump until released
        await sender.FirstSendStarted.Task.WaitAsync(TimeSpan.FromSeconds(5));
        for (var s = 1; s <= 5; s++) outbox.PostStep(Step(0, s));
        for (var s = 1; s <= 3; s++) outbox.PostStep(Step(1, s));
        outbox.PostStep(Step(0, 2));                   // late and older: ignored
        outbox.PostResult(Result(1));
        sender.Release();
        await WaitUntil(() => sender.Sent.Any(m => m.Method == JobsHubMethods.ImagesCompleted));

        var steps = sender.Sent.Where(m => m.Method == JobsHubMethods.Steps).SelectMany(m => (StepEvent[])m.Payload).ToList();
        var only = Assert.Single(steps);
        Assert.Equal((0, 5, 4), (only.ImageIndex, only.Step, only.Coalesced));
        var results = sender.Sent.Where(m => m.Method == JobsHubMethods.ImagesCompleted).SelectMany(m => (ImageCompletedEvent[])m.Payload).ToList();
        Assert.Equal(1, Assert.Single(results).Result.Index);
    }

    [Fact]
    public async Task Results_past_the_buffer_are_dropped_and_the_job_is_told_to_resynchronise_first()
    {
        var sender = new GatedSender();
        await using var outbox = Outbox(sender, new LiveOptions { ResultBufferCapacity = 4 });
        outbox.PostProgress(Progress(0));
        await sender.FirstSendStarted.Task.WaitAsync(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 10; i++) outbox.PostResult(Result(i));
        sender.Release();
        await WaitUntil(() => sender.Sent.Any(m => m.Method == JobsHubMethods.ImagesCompleted));

        var methods = sender.Sent.Skip(1).Select(m => m.Method).ToList();
        Assert.Equal(JobsHubMethods.Resync, methods[0]);
        Assert.Equal(Job, ((ResyncEvent)sender.Sent[1].Payload).JobId);
        Assert.Equal([0, 1, 2, 3], sender.Sent.Where(m => m.Method == JobsHubMethods.ImagesCompleted).SelectMany(m => (ImageCompletedEvent[])m.Payload).Select(e => e.Result.Index));
        Assert.Equal(6, outbox.Dropped);
    }

    [Fact]
    public async Task Progress_keeps_only_the_latest_and_never_goes_back()
    {
        var sender = new GatedSender();
        await using var outbox = Outbox(sender, new LiveOptions());
        outbox.PostProgress(Progress(0));
        await sender.FirstSendStarted.Task.WaitAsync(TimeSpan.FromSeconds(5));
        outbox.PostProgress(Progress(5));
        outbox.PostProgress(Progress(3));   // arrived out of order
        outbox.PostProgress(Progress(7));
        sender.Release();
        await WaitUntil(() => sender.Sent.Count >= 2);
        await Task.Delay(100);
        Assert.Equal([0, 7], sender.Sent.Select(m => ((JobProgressEvent)m.Payload).Completed));
    }

    [Fact]
    public async Task A_connection_that_does_not_read_past_the_send_timeout_is_closed()
    {
        var aborted = new TaskCompletionSource();
        var sender = new GatedSender();
        await using var outbox = new ConnectionOutbox("c1", "tenant-a", "k1", sender, new LiveOptions { SendTimeout = TimeSpan.FromMilliseconds(200) },
            NullLogger.Instance, abort: () => aborted.TrySetResult());
        outbox.TryAddJob(Job);
        outbox.PostProgress(Progress(1));
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Events_of_jobs_the_connection_does_not_follow_are_not_buffered()
    {
        var sender = new GatedSender();
        await using var outbox = Outbox(sender, new LiveOptions());
        outbox.PostStep(Step(0, 1) with { JobId = "job-00000000000000000000000000000002" });
        outbox.PostResult(Result(0) with { JobId = "job-00000000000000000000000000000002" });
        Assert.Equal(0, outbox.Pending);
        outbox.RemoveJob(Job);
        outbox.PostStep(Step(0, 1));
        Assert.Equal(0, outbox.Pending);
    }

    private static ConnectionOutbox Outbox(ILiveSender sender, LiveOptions options)
    {
        var outbox = new ConnectionOutbox("c1", "tenant-a", "k1", sender, options, NullLogger.Instance);
        Assert.True(outbox.TryAddJob(Job));
        return outbox;
    }

    private static StepEvent Step(int image, int step) => new(Job, image, step, 1, 2, 3, 6, [new LabelProbability(0, "a", 0.6f)]);

    private static ImageCompletedEvent Result(int image) => new(Job,
        new ResultView(image, $"{image}.png", null, 0, "a", 0.6f, 0, "a", 0, "a", false, [], [], DateTimeOffset.UtcNow), DateTimeOffset.UtcNow);

    private static JobProgressEvent Progress(int completed) => new(Job, JobState.Running, 100, completed, completed, 0, 0, null, null, null);

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(10);
        }
    }

    /// <summary>Records sends; every send waits until <see cref="Release"/> (a connection that is not reading).</summary>
    private sealed class GatedSender : ILiveSender
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<(string Method, object Payload)> Sent { get; } = [];
        public TaskCompletionSource FirstSendStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _gate.TrySetResult();

        public async Task SendAsync(string connectionId, string method, object payload, CancellationToken cancellationToken)
        {
            FirstSendStarted.TrySetResult();
            await _gate.Task.WaitAsync(cancellationToken);
            lock (Sent) Sent.Add((method, payload));
        }
    }
}
