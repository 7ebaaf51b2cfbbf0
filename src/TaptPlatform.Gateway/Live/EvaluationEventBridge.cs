using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Hosting;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// Bridges robustness evaluations to hub connections through their own observer contract (<see cref="IEvaluationObserver"/>),
/// apart from jobs: one observer object of this gateway, subscribed to every evaluation some connection follows and renewed
/// every <see cref="LiveOptions.RenewInterval"/> (which also re-subscribes after an evaluation grain moved, with a resync for
/// its followers). Progress is posted to the followers' outboxes as the hub's <c>jobProgress</c> event (the progress
/// shape both share: counts are outcomes, images × ε), with a throughput learnt from the increments.
/// </summary>
public sealed class EvaluationEventBridge(
    IGrainFactory grains,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider clock,
    ILogger<EvaluationEventBridge> log) : BackgroundService, IEvaluationObserver
{
    private readonly FollowedJobs<Watch> _followed = new(log, "evaluation");
    private IEvaluationObserver? _reference;
    private readonly Lock _referenceGate = new();

    private sealed class Watch(string tenantId, DateTimeOffset now) : FollowedJob(tenantId)
    {
        public ThroughputMeter Meter { get; } = new(now);
        public int Recorded { get; set; }
    }

    /// <summary>Evaluations followed by at least one connection of this gateway.</summary>
    public int WatchedEvaluations => _followed.Count;

    /// <summary>Whether <paramref name="id"/> is one of the tenant's evaluations (how the hub's job <c>Subscribe</c> still follows one).</summary>
    public Task<bool> IsEvaluationAsync(string tenantId, string id) =>
        Identifiers.IsValidJobId(id) ? grains.GetGrain<IEvaluationIndexGrain>(tenantId).ContainsAsync(id) : Task.FromResult(false);

    /// <summary>
    /// Makes the connection follow an evaluation of its tenant and returns its current state (another tenant's is "not
    /// found", exactly like a missing one); the snapshot's job view carries the counts, its evaluation the full status.
    /// </summary>
    public async Task<JobSnapshot> SubscribeAsync(ConnectionOutbox outbox, string id)
    {
        var evaluation = grains.Evaluation(id);
        await evaluation.GetStatusAsync(outbox.TenantId);
        return await _followed.FollowAsync(outbox, id, options.CurrentValue.Live.MaxSubscriptionsPerConnection,
            () => new Watch(outbox.TenantId, clock.GetUtcNow()), () => JobIds.NotFound(id), Subscribe, async watch =>
            {
                var status = await evaluation.GetStatusAsync(outbox.TenantId);
                if (status.StartedAt is { } started) watch.Meter.StartAt(started);
                lock (watch.Gate) watch.Recorded = Math.Max(watch.Recorded, status.OutcomesRecorded);
                var now = clock.GetUtcNow();
                return new JobSnapshot(EvaluationLive.View(status, now, watch.Meter.Rate(now)), [], [], false, status);
            });
    }

    /// <summary>Stops the connection following the evaluation (nothing when it did not).</summary>
    public void Unfollow(ConnectionOutbox outbox, string id) => _followed.Unfollow(outbox, id);

    /// <summary>The connection closed: it follows no evaluation any more.</summary>
    public void Disconnected(ConnectionOutbox outbox) => _followed.Disconnected(outbox);

    public Task OnEvaluationProgress(EvaluationProgress progress)
    {
        if (!_followed.TryGet(progress.EvaluationId, out var w)) return Task.CompletedTask;
        var now = clock.GetUtcNow();
        lock (w.Gate)
        {
            // Evaluations send counts only: the meter learns from their increments.
            for (var i = w.Recorded; i < progress.OutcomesRecorded; i++) w.Meter.Record(now);
            w.Recorded = Math.Max(w.Recorded, progress.OutcomesRecorded);
        }
        if (w.Followers.IsEmpty) return Task.CompletedTask;
        var remaining = progress.OutcomesTotal - progress.OutcomesRecorded;
        var p = ProgressEstimate.Of(progress.State, progress.OutcomesRecorded, remaining, null, null, now, w.Meter.Rate(now));
        var e = new JobProgressEvent(progress.EvaluationId, progress.State, progress.OutcomesTotal, progress.OutcomesRecorded, progress.OutcomesRecorded, 0, 0,
            p.ThroughputPerSecond, p.EtaSeconds, progress.Waiting);
        foreach (var f in w.Followers) f.PostProgress(e);
        return Task.CompletedTask;
    }

    private IEvaluationObserver Reference
    {
        get
        {
            lock (_referenceGate) return _reference ??= grains.CreateObjectReference<IEvaluationObserver>(this);
        }
    }

    // ---- renewal ------------------------------------------------------------------------------------------

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _followed.RenewEveryAsync(() => options.CurrentValue.Live.RenewInterval, clock, Subscribe, Unsubscribe, stoppingToken);

    /// <summary>Renews the subscriptions of followed evaluations and drops the rest (<see cref="FollowedJobs{TWatch}.RenewAsync"/>).</summary>
    internal Task RenewAsync(CancellationToken ct) => _followed.RenewAsync(Subscribe, Unsubscribe, ct);

    private Task<bool> Subscribe(string id, Watch w) => grains.GetGrain<IEvaluationJobGrain>(id).SubscribeAsync(w.TenantId, Reference);

    private Task Unsubscribe(string id, Watch w) => grains.GetGrain<IEvaluationJobGrain>(id).UnsubscribeAsync(w.TenantId, Reference);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } r)
            await ObserverReferences.ReleaseAsync(grains, r, _followed.All.Select(w =>
                (Func<IEvaluationObserver, Task>)(o => grains.GetGrain<IEvaluationJobGrain>(w.Key).UnsubscribeAsync(w.Value.TenantId, o))), cancellationToken);
    }
}
