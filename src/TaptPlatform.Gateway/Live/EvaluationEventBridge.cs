using System.Collections.Concurrent;
using System.Collections.Immutable;
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
    private readonly ConcurrentDictionary<string, Watch> _watches = new(StringComparer.Ordinal);
    private IEvaluationObserver? _reference;
    private readonly Lock _referenceGate = new();

    private sealed class Watch(string tenantId, DateTimeOffset now)
    {
        public string TenantId { get; } = tenantId;
        public Lock Gate { get; } = new();
        public ImmutableArray<ConnectionOutbox> Followers { get; set; } = [];
        public ThroughputMeter Meter { get; } = new(now);
        public int Recorded { get; set; }
    }

    /// <summary>Evaluations followed by at least one connection of this gateway.</summary>
    public int WatchedEvaluations => _watches.Count;

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
        var status = await evaluation.GetStatusAsync(outbox.TenantId);
        if (!outbox.TryAddJob(id))
            throw new TaptRequestException($"a connection follows at most {options.CurrentValue.Live.MaxSubscriptionsPerConnection} jobs and evaluations: unsubscribe from one first");
        var watch = _watches.GetOrAdd(id, _ => new Watch(outbox.TenantId, clock.GetUtcNow()));
        try
        {
            if (watch.TenantId != outbox.TenantId) throw JobIds.NotFound(id);
            lock (watch.Gate)
                if (!watch.Followers.Contains(outbox)) watch.Followers = watch.Followers.Add(outbox);
            await evaluation.SubscribeAsync(outbox.TenantId, Reference);
            // Read after joining, so nothing falls between the snapshot and the live events.
            status = await evaluation.GetStatusAsync(outbox.TenantId);
            if (status.StartedAt is { } started) watch.Meter.StartAt(started);
            lock (watch.Gate) watch.Recorded = Math.Max(watch.Recorded, status.OutcomesRecorded);
            var now = clock.GetUtcNow();
            return new JobSnapshot(EvaluationLive.View(status, now, watch.Meter.Rate(now)), [], [], false, status);
        }
        catch
        {
            Unfollow(outbox, id);
            throw;
        }
    }

    /// <summary>Stops the connection following the evaluation (nothing when it did not).</summary>
    public void Unfollow(ConnectionOutbox outbox, string id)
    {
        if (!_watches.TryGetValue(id, out var watch)) return;
        outbox.RemoveJob(id);
        lock (watch.Gate) watch.Followers = watch.Followers.Remove(outbox);
    }

    /// <summary>The connection closed: it follows no evaluation any more.</summary>
    public void Disconnected(ConnectionOutbox outbox)
    {
        foreach (var id in outbox.Jobs) Unfollow(outbox, id);
    }

    public Task OnEvaluationProgress(EvaluationProgress progress)
    {
        if (!_watches.TryGetValue(progress.EvaluationId, out var w)) return Task.CompletedTask;
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

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.CurrentValue.Live.RenewInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await RenewAsync(stoppingToken);
        }
    }

    /// <summary>
    /// Renews the subscriptions of followed evaluations and drops the rest; an evaluation that no longer knew the
    /// subscription was reactivated since and sent its events to no one: its followers get a resync.
    /// </summary>
    internal async Task RenewAsync(CancellationToken ct)
    {
        foreach (var (id, watch) in _watches)
        {
            if (ct.IsCancellationRequested) return;
            var evaluation = grains.GetGrain<IEvaluationJobGrain>(id);
            try
            {
                if (watch.Followers.IsEmpty)
                {
                    _watches.TryRemove(new KeyValuePair<string, Watch>(id, watch));
                    await evaluation.UnsubscribeAsync(watch.TenantId, Reference);
                }
                else if (!await evaluation.SubscribeAsync(watch.TenantId, Reference))
                {
                    log.LogInformation("Evaluation {Evaluation} had lost this gateway's subscription; its {Followers} follower(s) resync", id, watch.Followers.Length);
                    foreach (var f in watch.Followers) f.PostResync(id, "the evaluation was reactivated and live events were missed: subscribe again for a fresh snapshot");
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogDebug(e, "Renewing the subscription to evaluation {Evaluation} failed; retrying next round", id);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } r)
            await ObserverReferences.ReleaseAsync(grains, r, _watches.Select(w =>
                (Func<IEvaluationObserver, Task>)(o => grains.GetGrain<IEvaluationJobGrain>(w.Key).UnsubscribeAsync(w.Value.TenantId, o))), cancellationToken);
    }
}
