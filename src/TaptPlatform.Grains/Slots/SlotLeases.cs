using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Slots;

/// <summary>A running job's hold on a slot: whose job it is and until when the hold lasts unless renewed.</summary>
[GenerateSerializer, Immutable]
public sealed record SlotLease([property: Id(0)] string TenantId, [property: Id(1)] DateTimeOffset Expires);

/// <summary>
/// A limited set of slots held by running jobs under leases (job id → lease), kept in a grain's persistent state.
/// Jobs take a slot at start, renew it while they run and release it when they end; a lease that is not renewed
/// expires, so a job that dies for good frees its slot without anyone asking it. Nothing here polls a job.
/// </summary>
public sealed class SlotLeases(Dictionary<string, SlotLease> leases)
{
    public int Count => leases.Count;

    public IEnumerable<string> JobIds => leases.Keys;

    /// <summary>Takes a slot for the job when fewer than <paramref name="limit"/> are held (a job holding one keeps it).</summary>
    public bool TryAcquire(string jobId, string tenantId, int limit, DateTimeOffset now, TimeSpan lease)
    {
        if (!leases.ContainsKey(jobId) && leases.Count >= limit) return false;
        leases[jobId] = new SlotLease(tenantId, now + lease);
        return true;
    }

    /// <summary>Extends the job's lease; a job whose lease expired while it ran takes its slot again, whatever the limit.</summary>
    public void Renew(string jobId, string tenantId, DateTimeOffset now, TimeSpan lease) => leases[jobId] = new SlotLease(tenantId, now + lease);

    public bool Release(string jobId) => leases.Remove(jobId);

    /// <summary>Drops the leases that expired; returns how many.</summary>
    public int Prune(DateTimeOffset now)
    {
        var expired = leases.Where(kv => kv.Value.Expires <= now).Select(kv => kv.Key).ToList();
        foreach (var jobId in expired) leases.Remove(jobId);
        return expired.Count;
    }

    /// <summary>The longest lease a caller may ask for: a lost job frees its slot within this at the latest.</summary>
    public static readonly TimeSpan MaxLease = TimeSpan.FromHours(1);

    public static void RequireLease(TimeSpan lease)
    {
        if (lease <= TimeSpan.Zero || lease > MaxLease)
            throw new TaptRequestException($"a slot lease must be in (0, {MaxLease}], got {lease}");
    }
}
