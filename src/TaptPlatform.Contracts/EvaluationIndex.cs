using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>A tenant's evaluation job ids, oldest first (key: tenant id). The gateway records each evaluation it creates.</summary>
public interface IEvaluationIndexGrain : ITenantDataGrain
{
    const int MaxEntries = 10_000;

    Task AddAsync(string jobId);

    Task<ImmutableArray<string>> ListAsync();

    /// <summary>Whether the tenant has this evaluation (among its latest <see cref="MaxEntries"/>).</summary>
    Task<bool> ContainsAsync(string jobId);
}
