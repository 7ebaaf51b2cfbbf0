using System.Collections.Concurrent;
using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Live;

/// <summary>One job some connections of this gateway follow: its tenant and the followers' outboxes.</summary>
public class FollowedJob(string tenantId)
{
    private bool _dropped;

    public string TenantId { get; } = tenantId;
    public Lock Gate { get; } = new();
    public ImmutableArray<ConnectionOutbox> Followers { get; private set; } = [];

    /// <summary>Adds a follower; false when a renewal dropped this watch meanwhile (the caller gets the job's current one).</summary>
    public bool TryAddFollower(ConnectionOutbox outbox)
    {
        lock (Gate)
        {
            if (_dropped) return false;
            if (!Followers.Contains(outbox)) Followers = Followers.Add(outbox);
            return true;
        }
    }

    public void RemoveFollower(ConnectionOutbox outbox)
    {
        lock (Gate) Followers = Followers.Remove(outbox);
    }

    /// <summary>
    /// Marks the watch dropped when no one follows it; checked and set under the gate, so a follower joining at that
    /// moment either keeps the watch or goes on to a fresh one, never to a watch that no longer gets events.
    /// </summary>
    public bool TryDrop()
    {
        lock (Gate)
        {
            if (!Followers.IsEmpty) return false;
            _dropped = true;
            return true;
        }
    }
}

/// <summary>
/// The jobs a bridge's connections follow, and the renewal of the bridge's subscriptions to them: what the job, evaluation
/// and training bridges share. A job followed by no one is dropped
/// at the next renewal; one whose grain no longer knew the subscription (it was reactivated since and sent its events to
/// no one) gets its followers a resync.
/// </summary>
public sealed class FollowedJobs<TWatch>(ILogger log, string kind) where TWatch : FollowedJob
{
    private readonly ConcurrentDictionary<string, TWatch> _watches = new(StringComparer.Ordinal);

    public int Count => _watches.Count;

    public IEnumerable<KeyValuePair<string, TWatch>> All => _watches;

    public bool TryGet(string id, out TWatch watch) => _watches.TryGetValue(id, out watch!);

    /// <summary>
    /// Makes the outbox a follower of <paramref name="id"/>; throws <paramref name="notFound"/> when another tenant's
    /// connections follow that id. A caller whose subscription then fails calls <see cref="Unfollow"/>.
    /// </summary>
    public TWatch Follow(ConnectionOutbox outbox, string id, int maxPerConnection, Func<TWatch> create, Func<Exception> notFound)
    {
        if (!outbox.TryAddJob(id))
            throw new TaptRequestException($"a connection follows at most {maxPerConnection} jobs and evaluations: unsubscribe from one first");
        while (true)
        {
            var watch = _watches.GetOrAdd(id, _ => create());
            if (watch.TenantId != outbox.TenantId) throw notFound();
            if (watch.TryAddFollower(outbox)) return watch;
            _watches.TryRemove(new KeyValuePair<string, TWatch>(id, watch));
        }
    }

    /// <summary>
    /// <see cref="Follow"/>, then <paramref name="subscribe"/> the bridge at the job's grain, then <paramref name="readState"/>:
    /// read after joining, so nothing falls between that state and the live events. On any failure the connection does
    /// not follow the job.
    /// </summary>
    public async Task<T> FollowAsync<T>(ConnectionOutbox outbox, string id, int maxPerConnection, Func<TWatch> create, Func<Exception> notFound,
        Func<string, TWatch, Task> subscribe, Func<TWatch, Task<T>> readState)
    {
        try
        {
            var watch = Follow(outbox, id, maxPerConnection, create, notFound);
            await subscribe(id, watch);
            return await readState(watch);
        }
        catch
        {
            Unfollow(outbox, id);
            throw;
        }
    }

    /// <summary>Stops the connection following the job (nothing when it did not).</summary>
    public void Unfollow(ConnectionOutbox outbox, string id)
    {
        outbox.RemoveJob(id);
        if (_watches.TryGetValue(id, out var watch)) watch.RemoveFollower(outbox);
    }

    /// <summary>The connection closed: it follows nothing any more.</summary>
    public void Disconnected(ConnectionOutbox outbox)
    {
        foreach (var id in outbox.Jobs) Unfollow(outbox, id);
    }

    /// <summary>
    /// Runs <see cref="RenewAsync"/> every <paramref name="interval"/> (read each round, so a changed setting applies) until
    /// stopped, then <paramref name="afterRound"/> if given.
    /// </summary>
    public async Task RenewEveryAsync(Func<TimeSpan> interval, TimeProvider clock, Func<string, TWatch, Task<bool>> subscribe,
        Func<string, TWatch, Task> unsubscribe, CancellationToken ct, Func<CancellationToken, Task>? afterRound = null)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval(), clock, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await RenewAsync(subscribe, unsubscribe, ct);
            if (afterRound is not null) await afterRound(ct);
        }
    }

    /// <summary>Renews the subscriptions of followed jobs and drops the rest; a failure is retried at the next round.</summary>
    public async Task RenewAsync(Func<string, TWatch, Task<bool>> subscribe, Func<string, TWatch, Task> unsubscribe, CancellationToken ct)
    {
        foreach (var (id, watch) in _watches)
        {
            if (ct.IsCancellationRequested) return;
            try
            {
                if (watch.TryDrop())
                {
                    _watches.TryRemove(new KeyValuePair<string, TWatch>(id, watch));
                    await unsubscribe(id, watch);
                    // A follower who came meanwhile is on a fresh watch, whose subscription that call may just have removed.
                    if (_watches.TryGetValue(id, out var fresh)) await subscribe(id, fresh);
                }
                else if (!await subscribe(id, watch))
                {
                    log.LogInformation("The {Kind} {Job} had lost this gateway's subscription; its {Followers} follower(s) resync", kind, id, watch.Followers.Length);
                    foreach (var f in watch.Followers) f.PostResync(id, $"the {kind} was reactivated and live events were missed: subscribe again for its current state");
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogDebug(e, "Renewing the subscription to the {Kind} {Job} failed; retrying next round", kind, id);
            }
        }
    }
}
