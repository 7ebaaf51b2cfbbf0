using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Auth;

/// <summary>
/// Makes this gateway forget a key the moment any gateway revokes it: subscribed to the cluster's
/// <see cref="IKeyRevocationsGrain"/>, renewed every <see cref="RenewInterval"/> (well within the grain's five-minute
/// expiry). A notice drops the key's remembered answers and closes the hub connections that use it; a renewal that
/// finds this gateway unknown (notices may have been lost with a silo) forgets every remembered key. Without the grain
/// the key cache's own duration still bounds how long a revoked key is accepted.
/// </summary>
public sealed class KeyRevocationListener(
    IGrainFactory grains,
    ApiKeyValidator validator,
    LiveConnections connections,
    TimeProvider clock,
    ILogger<KeyRevocationListener> log) : BackgroundService, IKeyRevocationObserver
{
    public static readonly TimeSpan RenewInterval = TimeSpan.FromSeconds(30);

    private readonly TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IKeyRevocationObserver? _reference;
    private CancellationToken _stopping;

    /// <summary>Completes once this gateway first subscribed (from then on it hears of every revocation).</summary>
    public Task Subscribed => _subscribed.Task;

    public Task OnKeysRevoked(KeyRevocation revocation)
    {
        if (revocation.KeyId is { } keyId)
        {
            validator.Forget(revocation.TenantId, keyId);
            connections.AbortKey(revocation.TenantId, keyId);
        }
        else
        {
            validator.ForgetTenant(revocation.TenantId);
            _ = RevalidateAsync();   // every hub connection of the tenant asks its grain again, and is closed
        }
        return Task.CompletedTask;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        _reference = grains.CreateObjectReference<IKeyRevocationObserver>(this);
        var revocations = grains.GetGrain<IKeyRevocationsGrain>(0);
        var first = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var known = await revocations.SubscribeAsync(_reference);
                if (!known && !first)
                {
                    log.LogInformation("Key revocations: this gateway was unsubscribed (a silo moved the notices); every remembered key is checked again");
                    validator.ForgetAll();
                }
                first = false;
                _subscribed.TrySetResult();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning(e, "Key revocations: subscription not renewed; revoked keys are forgotten within the key cache's duration");
            }
            try
            {
                await Task.Delay(RenewInterval, clock, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } r)
            await ObserverReferences.ReleaseAsync(grains, r, [o => grains.GetGrain<IKeyRevocationsGrain>(0).UnsubscribeAsync(o)], cancellationToken);
    }

    private async Task RevalidateAsync()
    {
        try
        {
            await connections.RevalidateAsync(validator, _stopping);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning(e, "Key revocations: hub connections not re-checked now; they are at the next renewal");
        }
    }
}
