using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>The answer to a quota reservation: granted, or refused with when to try again.</summary>
[GenerateSerializer, Immutable]
public sealed record QuotaDecision(
    [property: Id(0)] bool Granted,
    [property: Id(1)] TimeSpan RetryAfter,
    [property: Id(2)] string? Reason,
    [property: Id(3)] int Used,
    [property: Id(4)] int Limit)
{
    public static QuotaDecision Grant(int used, int limit) => new(true, TimeSpan.Zero, null, used, limit);
}

/// <summary>
/// The limits a job's start is held to (a gateway's configuration for the tenant): the tenant's jobs running at once
/// and the cluster's, and the tenant's images per UTC day for a start that charges its images then (an evaluation:
/// images × ε; a job's images are charged as they are uploaded). <see cref="None"/>: counted, never refused (callers
/// inside the cluster, tests).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobLimits(
    [property: Id(0)] int MaxConcurrentJobs,
    [property: Id(1)] int MaxRunningJobs,
    [property: Id(2)] int ImagesPerDay = int.MaxValue)
{
    public static JobLimits None { get; } = new(int.MaxValue, int.MaxValue);
}

/// <summary>Which limit refused a start.</summary>
public enum QuotaKind
{
    /// <summary>The tenant's jobs running at once.</summary>
    ConcurrentJobs,

    /// <summary>The cluster's jobs running at once.</summary>
    ClusterRunningJobs,

    /// <summary>The tenant's images per UTC day.</summary>
    ImagesPerDay,
}

/// <summary>A start refused by a limit: try again after <see cref="RetryAfter"/>; the job keeps its images.</summary>
[GenerateSerializer]
public sealed class TaptQuotaException : Exception
{
    public TaptQuotaException() { }
    public TaptQuotaException(string message) : base(message) { }
    public TaptQuotaException(string message, Exception inner) : base(message, inner) { }

    public TaptQuotaException(QuotaKind kind, QuotaDecision decision) : base(decision.Reason ?? "a limit refused the start")
    {
        Kind = kind;
        RetryAfter = decision.RetryAfter;
        Used = decision.Used;
        Limit = decision.Limit;
    }

    [Id(0)] public QuotaKind Kind { get; init; }
    [Id(1)] public TimeSpan RetryAfter { get; init; }
    [Id(2)] public int Used { get; init; }
    [Id(3)] public int Limit { get; init; }
}

/// <summary>What a tenant has used: images accepted today (UTC) and its running jobs.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantUsage(
    [property: Id(0)] DateOnly Day,
    [property: Id(1)] int ImagesToday,
    [property: Id(2)] ImmutableArray<string> RunningJobs);

/// <summary>
/// A tenant's quota counters (key: tenant id): images accepted per UTC day and jobs running at once. The limits
/// are the caller's (a gateway's configuration); the grain keeps the counts, so every gateway sees the same ones.
/// </summary>
public interface ITenantQuotaGrain : ITenantDataGrain
{
    /// <summary>Takes <paramref name="count"/> images of today's allowance, or refuses until the next UTC day.</summary>
    Task<QuotaDecision> ReserveImagesAsync(int count, int dailyLimit);

    /// <summary>Gives back images that were reserved but not accepted (rejected at upload).</summary>
    Task ReleaseImagesAsync(int count);

    /// <summary>
    /// Leases a running-job slot to <paramref name="jobId"/> for <paramref name="lease"/> when fewer than
    /// <paramref name="maxConcurrent"/> of the tenant's jobs hold one. The job renews its lease while it runs and
    /// releases it when it ends; a lease nobody renews expires, so a job that dies for good frees its slot.
    /// </summary>
    Task<QuotaDecision> TryStartJobAsync(string jobId, int maxConcurrent, TimeSpan lease);

    /// <summary>Extends a running job's lease (taking a slot again, beyond the limit, if it had expired: the job runs).</summary>
    Task RenewJobAsync(string jobId, TimeSpan lease);

    /// <summary>Frees the job's slot (it ended, or another limit refused its start). Idempotent.</summary>
    Task ReleaseJobAsync(string jobId);

    Task<TenantUsage> GetUsageAsync();
}

/// <summary>
/// The cluster's admission of running jobs (one grain, key <see cref="ClusterKey"/>): at most a gateway-configured
/// number of jobs run at once across every tenant, so the work in flight on the accelerators (and its memory) stays
/// bounded however many tenants submit. Jobs refused here keep their stored images and may be started again later.
/// </summary>
public interface IJobAdmissionGrain : IGrainWithStringKey
{
    const string ClusterKey = "cluster";

    /// <summary>Leases a slot to the tenant's job when fewer than <paramref name="maxRunning"/> jobs hold one in the cluster.</summary>
    Task<QuotaDecision> TryStartJobAsync(string tenantId, string jobId, int maxRunning, TimeSpan lease);

    /// <summary>Extends a running job's lease (taking a slot again if it had expired).</summary>
    Task RenewJobAsync(string tenantId, string jobId, TimeSpan lease);

    /// <summary>Frees the job's slot (it ended, or another limit refused its start). Idempotent.</summary>
    Task ReleaseJobAsync(string jobId);

    /// <summary>The jobs holding a slot now (expired leases dropped first).</summary>
    Task<int> GetRunningCountAsync();
}
