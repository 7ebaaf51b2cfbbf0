using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>A tenant key revoked (<see cref="KeyId"/>), or every key of the tenant (null: its erasure).</summary>
[GenerateSerializer, Immutable]
public sealed record KeyRevocation(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string? KeyId);

/// <summary>A gateway that remembers key checks for a while and must forget a key the moment it is revoked.</summary>
public interface IKeyRevocationObserver : IGrainObserver
{
    [OneWay] Task OnKeysRevoked(KeyRevocation revocation);
}

/// <summary>
/// Tells every gateway of the cluster about revoked keys (one grain, key 0). A gateway subscribes and renews within
/// <see cref="IJobGrain.ObserverExpiry"/>; a renewal that finds it unknown (the grain moved after a silo died, and
/// notices may have been missed) tells it to forget every key it remembers.
/// </summary>
public interface IKeyRevocationsGrain : IGrainWithIntegerKey
{
    /// <summary>Subscribes or renews; false when the observer was not subscribed (it may have missed notices).</summary>
    Task<bool> SubscribeAsync(IKeyRevocationObserver observer);

    Task UnsubscribeAsync(IKeyRevocationObserver observer);

    /// <summary>Sends the revocation to every subscribed gateway (best effort, each one-way).</summary>
    Task PublishAsync(KeyRevocation revocation);
}
