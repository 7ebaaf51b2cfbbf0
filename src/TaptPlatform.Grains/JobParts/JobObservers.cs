using Microsoft.Extensions.Logging;
using Orleans.Utilities;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// The live observers of a job or an evaluation (the gateways' hub bridges): subscriptions expire unless renewed
/// (<see cref="IJobGrain.ObserverExpiry"/>), so a gateway that died stops being called.
/// </summary>
public class Observers<TObserver>(ILogger log) where TObserver : IGrainObserver
{
    private readonly ObserverManager<TObserver> _observers = new(IJobGrain.ObserverExpiry, log);

    public int Count => _observers.Count;

    /// <summary>Subscribes or renews; true when the observer was already subscribed (a renewal).</summary>
    public bool Subscribe(TObserver observer)
    {
        var known = _observers.Observers.ContainsKey(observer);
        _observers.Subscribe(observer, observer);
        return known;
    }

    public void Unsubscribe(TObserver observer) => _observers.Unsubscribe(observer);

    public Task Notify(Func<TObserver, Task> notification) => _observers.Count == 0 ? Task.CompletedTask : _observers.Notify(notification);
}

/// <summary>A job's observers.</summary>
public sealed class JobObservers(ILogger log) : Observers<IJobObserver>(log);
