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
public interface ITenantQuotaGrain : IGrainWithStringKey
{
    /// <summary>Takes <paramref name="count"/> images of today's allowance, or refuses until the next UTC day.</summary>
    Task<QuotaDecision> ReserveImagesAsync(int count, int dailyLimit);

    /// <summary>Gives back images that were reserved but not accepted (rejected at upload).</summary>
    Task ReleaseImagesAsync(int count);

    /// <summary>
    /// Counts <paramref name="jobId"/> as running when fewer than <paramref name="maxConcurrent"/> of the tenant's
    /// jobs are; finished jobs are dropped from the count by asking their job grains.
    /// </summary>
    Task<QuotaDecision> TryStartJobAsync(string jobId, int maxConcurrent);

    /// <summary>Stops counting a job that was counted at start but did not start (another limit refused it).</summary>
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

    /// <summary>Counts the tenant's job as running when fewer than <paramref name="maxRunning"/> jobs run in the cluster.</summary>
    Task<QuotaDecision> TryStartJobAsync(string tenantId, string jobId, int maxRunning);

    /// <summary>Stops counting a job that was admitted but did not start (another limit refused it).</summary>
    Task ReleaseJobAsync(string jobId);

    /// <summary>The jobs counted as running now (finished ones pruned first).</summary>
    Task<int> GetRunningCountAsync();
}
