using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>A tenant's evaluation job ids, oldest first (key: tenant id). The gateway records each evaluation it creates.</summary>
public interface IEvaluationIndexGrain : IGrainWithStringKey
{
    const int MaxEntries = 10_000;

    Task AddAsync(string jobId);

    Task<ImmutableArray<string>> ListAsync();
}
