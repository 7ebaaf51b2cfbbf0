using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// The cluster's revoked-key notices to its gateways (key 0). It keeps no state: a gateway that was subscribed to an
/// activation that died learns at its next renewal that it is unknown, and forgets every key it remembers.
/// </summary>
public sealed class KeyRevocationsGrain(ILogger<KeyRevocationsGrain> log) : Grain, IKeyRevocationsGrain
{
    private readonly Observers<IKeyRevocationObserver> _gateways = new(log);

    public Task<bool> SubscribeAsync(IKeyRevocationObserver observer) => Task.FromResult(_gateways.Subscribe(observer));

    public Task UnsubscribeAsync(IKeyRevocationObserver observer)
    {
        _gateways.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    public Task PublishAsync(KeyRevocation revocation)
    {
        log.LogInformation("Tenant {Tenant}: {Keys} revoked, telling {Gateways} gateway(s)", revocation.TenantId, revocation.KeyId ?? "every key", _gateways.Count);
        return _gateways.Notify(g => g.OnKeysRevoked(revocation));
    }
}
