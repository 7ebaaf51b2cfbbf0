using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Hosting;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// Bridges prompt training jobs to hub connections (<see cref="IPromptTrainingObserver"/>), as the evaluation bridge does
/// for evaluations: one observer object of this gateway, subscribed to every training job some connection follows and
/// renewed every <see cref="LiveOptions.RenewInterval"/> (a job that lost the subscription after it moved gets its
/// followers a resync). Progress goes to the followers' outboxes as the hub's <c>jobProgress</c> event: the counts are
/// epochs (done of adversarial plus clean), <see cref="JobProgressEvent.Epoch"/> the epoch just finished with its loss and
/// held-out clean and robust accuracy (a client that sees the count jump by more than one reads the status for the curve).
/// </summary>
public sealed class PromptTrainingEventBridge(
    IGrainFactory grains,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider clock,
    ILogger<PromptTrainingEventBridge> log) : BackgroundService, IPromptTrainingObserver
{
    private readonly FollowedJobs<FollowedJob> _followed = new(log, "training job");
    private IPromptTrainingObserver? _reference;
    private readonly Lock _referenceGate = new();

    /// <summary>Makes the connection follow a training job of its tenant and returns its status (another tenant's is "not found", like a missing one).</summary>
    public async Task<PromptTrainingStatus> SubscribeAsync(ConnectionOutbox outbox, string id)
    {
        if (!Identifiers.IsValidJobId(id)) throw new TaptNotFoundException("training job not found");
        var job = grains.GetGrain<IPromptTrainingJobGrain>(id);
        await job.GetStatusAsync(outbox.TenantId);
        return await _followed.FollowAsync(outbox, id, options.CurrentValue.Live.MaxSubscriptionsPerConnection,
            () => new FollowedJob(outbox.TenantId), () => new TaptNotFoundException($"training job '{id}' not found"), Subscribe,
            _ => job.GetStatusAsync(outbox.TenantId));
    }

    public void Unfollow(ConnectionOutbox outbox, string id) => _followed.Unfollow(outbox, id);

    public void Disconnected(ConnectionOutbox outbox) => _followed.Disconnected(outbox);

    public Task OnTrainingProgress(PromptTrainingProgress progress)
    {
        if (!_followed.TryGet(progress.JobId, out var w) || w.Followers.IsEmpty) return Task.CompletedTask;
        var e = new JobProgressEvent(progress.JobId, progress.State, progress.EpochsTotal, progress.EpochsDone, progress.EpochsDone, 0, 0, null, null, progress.Waiting)
        {
            Epoch = progress.Latest,
        };
        foreach (var f in w.Followers) f.PostProgress(e);
        return Task.CompletedTask;
    }

    private IPromptTrainingObserver Reference
    {
        get
        {
            lock (_referenceGate) return _reference ??= grains.CreateObjectReference<IPromptTrainingObserver>(this);
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => _followed.RenewEveryAsync(() => options.CurrentValue.Live.RenewInterval, clock,
        Subscribe, (id, w) => grains.GetGrain<IPromptTrainingJobGrain>(id).UnsubscribeAsync(w.TenantId, Reference), stoppingToken);

    private Task<bool> Subscribe(string id, FollowedJob w) => grains.GetGrain<IPromptTrainingJobGrain>(id).SubscribeAsync(w.TenantId, Reference);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } r)
            await ObserverReferences.ReleaseAsync(grains, r, _followed.All.Select(w =>
                (Func<IPromptTrainingObserver, Task>)(o => grains.GetGrain<IPromptTrainingJobGrain>(w.Key).UnsubscribeAsync(w.Value.TenantId, o))), cancellationToken);
    }
}
