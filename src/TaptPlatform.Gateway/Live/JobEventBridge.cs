using System.Collections.Immutable;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Hosting;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// Bridges job grain events to hub connections. The gateway holds one <see cref="IJobObserver"/> object, subscribed
/// to every job some connection follows (renewed every <see cref="LiveOptions.RenewInterval"/>, well within the
/// grains' five-minute expiry, which also re-subscribes after a job grain moved). Observer callbacks only post into
/// the followers' <see cref="ConnectionOutbox"/>es, so a slow browser never holds up the grain, the Orleans client or
/// another browser. Nothing in the grains knows SignalR.
/// </summary>
public sealed class JobEventBridge(
    IGrainFactory grains,
    JobLabels labels,
    LiveConnections connections,
    ApiKeyValidator validator,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider clock,
    ILogger<JobEventBridge> log) : BackgroundService, IJobObserver
{
    private readonly FollowedJobs<JobWatch> _followed = new(log, "job");
    private readonly SemaphoreSlim _referenceGate = new(1, 1);
    private IJobObserver? _reference;

    private sealed class JobWatch(string tenantId, DateTimeOffset now) : FollowedJob(tenantId)
    {
        public ImmutableArray<string>? Labels { get; set; }
        public ThroughputMeter Meter { get; } = new(now);
    }

    /// <summary>Jobs followed by at least one connection of this gateway.</summary>
    public int WatchedJobs => _followed.Count;

    /// <summary>
    /// Makes the connection follow a job of its tenant and returns the job's current state. The job is checked with
    /// the connection's tenant first: a job of another tenant is "not found", exactly like a missing one.
    /// </summary>
    public async Task<JobSnapshot> SubscribeAsync(ConnectionOutbox outbox, string jobId)
    {
        var job = grains.Job(jobId);
        await job.GetStatusAsync(outbox.TenantId);
        return await _followed.FollowAsync(outbox, jobId, options.CurrentValue.Live.MaxSubscriptionsPerConnection,
            () => new JobWatch(outbox.TenantId, clock.GetUtcNow()), () => JobIds.NotFound(jobId), SubscribeGrainAsync, watch => SnapshotAsync(outbox, job, watch));
    }

    /// <summary>The job's state, the labels and its results so far, for a follower that just joined.</summary>
    private async Task<JobSnapshot> SnapshotAsync(ConnectionOutbox outbox, IJobGrain job, JobWatch watch)
    {
        var status = await job.GetStatusAsync(outbox.TenantId);
        if (status.StartedAt is { } started) watch.Meter.StartAt(started);
        var names = await labels.ForAsync(outbox.TenantId, status);
        watch.Labels ??= names;
        var max = options.CurrentValue.Live.SnapshotResults;
        var results = ImmutableArray.CreateBuilder<ResultView>();
        int? offset = 0;
        var total = 0;
        while (offset is { } o && results.Count < max)
        {
            var page = await job.GetResultsAsync(outbox.TenantId, o, Math.Min(1000, max - results.Count));
            results.AddRange(page.Items.Select(r => ResultView.From(r, names)));
            total = page.TotalResults;
            offset = page.NextOffset;
        }
        var now = clock.GetUtcNow();
        return new JobSnapshot(JobView.From(status, now, watch.Meter.Rate(now)), names ?? [], results.ToImmutable(), total > results.Count);
    }

    public void Unfollow(ConnectionOutbox outbox, string jobId) => _followed.Unfollow(outbox, jobId);

    /// <summary>The connection closed: it follows nothing any more.</summary>
    public void Disconnected(ConnectionOutbox outbox) => _followed.Disconnected(outbox);

    // ---- IJobObserver: called by the job grains; only posts, never waits ----------------------------------

    public Task OnImageStep(ImageStepProgress progress)
    {
        if (_followed.TryGet(progress.JobId, out var w) && !w.Followers.IsEmpty)
        {
            var e = StepEvent.From(progress);
            foreach (var f in w.Followers) f.PostStep(e);
        }
        return Task.CompletedTask;
    }

    public Task OnImageCompleted(ImageCompleted completed)
    {
        if (_followed.TryGet(completed.JobId, out var w))
        {
            var now = clock.GetUtcNow();
            w.Meter.Record(now);
            if (!w.Followers.IsEmpty)
            {
                var e = new ImageCompletedEvent(completed.JobId, ResultView.From(completed.Result, w.Labels), now);
                foreach (var f in w.Followers) f.PostResult(e);
            }
        }
        return Task.CompletedTask;
    }

    public Task OnJobProgress(JobProgress progress)
    {
        if (_followed.TryGet(progress.JobId, out var w) && !w.Followers.IsEmpty)
        {
            var c = progress.Counts;
            var now = clock.GetUtcNow();
            // The recent rate only: the event carries no start time, and a meter that saw nothing yet says so.
            var p = ProgressEstimate.Of(progress.State, c.Completed, c.Remaining, null, null, now, w.Meter.Rate(now));
            var e = new JobProgressEvent(progress.JobId, progress.State, c.Total, c.Completed, c.Succeeded, c.Failed, c.Flagged,
                p.ThroughputPerSecond, p.EtaSeconds, progress.Waiting);
            foreach (var f in w.Followers) f.PostProgress(e);
        }
        return Task.CompletedTask;
    }

    // ---- renewal ------------------------------------------------------------------------------------------

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => _followed.RenewEveryAsync(() => options.CurrentValue.Live.RenewInterval, clock,
        SubscribeGrainAsync, UnsubscribeAsync, stoppingToken, afterRound: ct => connections.RevalidateAsync(validator, ct));

    /// <summary>
    /// Renews the subscriptions of followed jobs and drops the rest. A job that no longer knew the subscription was
    /// reactivated since (its silo died, or it moved) and sent its events to no one: its followers get a resync.
    /// </summary>
    internal Task RenewAsync(CancellationToken ct) => _followed.RenewAsync(SubscribeGrainAsync, UnsubscribeAsync, ct);

    private async Task<bool> SubscribeGrainAsync(string jobId, JobWatch watch) =>
        await grains.GetGrain<IJobGrain>(jobId).SubscribeAsync(watch.TenantId, await ReferenceAsync());

    private Task UnsubscribeAsync(string jobId, JobWatch watch) =>
        _reference is { } r ? grains.GetGrain<IJobGrain>(jobId).UnsubscribeAsync(watch.TenantId, r) : Task.CompletedTask;

    private async Task<IJobObserver> ReferenceAsync()
    {
        if (_reference is { } r) return r;
        await _referenceGate.WaitAsync();
        try
        {
            return _reference ??= grains.CreateObjectReference<IJobObserver>(this);
        }
        finally
        {
            _referenceGate.Release();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } r)
            await ObserverReferences.ReleaseAsync(grains, r, _followed.All.Select(w =>
                (Func<IJobObserver, Task>)(o => grains.GetGrain<IJobGrain>(w.Key).UnsubscribeAsync(w.Value.TenantId, o))), cancellationToken);
    }
}
