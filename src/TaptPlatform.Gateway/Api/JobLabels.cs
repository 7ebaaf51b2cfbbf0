using System.Collections.Concurrent;
using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// The labels of vocabulary versions, by index (versions never change, so they are cached). Results carry label
/// indices for the baseline and APT predictions; this spells them out.
/// </summary>
public sealed class JobLabels(IGrainFactory grains)
{
    private const int MaxEntries = 512;
    private readonly ConcurrentDictionary<(string Tenant, string Name, int Version), ImmutableArray<string>> _cache = new();

    /// <summary>The labels of the job's vocabulary version, or null when that version was deleted since.</summary>
    public async Task<ImmutableArray<string>?> ForAsync(string tenantId, JobStatus job)
    {
        var key = (tenantId, job.Vocabulary, job.VocabularyVersion);
        if (_cache.TryGetValue(key, out var hit)) return hit;
        try
        {
            var v = await grains.GetGrain<ITenantGrain>(tenantId).GetVocabularyAsync(job.Vocabulary, job.VocabularyVersion);
            var labels = v.Labels.Select(l => l.Label).ToImmutableArray();
            if (_cache.Count >= MaxEntries) _cache.Clear();
            _cache[key] = labels;
            return labels;
        }
        catch (TaptNotFoundException)
        {
            return null;
        }
    }
}

/// <summary>Job id checks shared by the HTTP API and the hub.</summary>
public static class JobIds
{
    /// <summary>The job grain for a job id of the right shape; otherwise the same not-found a foreign job gets.</summary>
    public static IJobGrain Job(this IGrainFactory grains, string? jobId) =>
        Identifiers.IsValidJobId(jobId) ? grains.GetGrain<IJobGrain>(jobId!) : throw NotFound(jobId);

    public static TaptNotFoundException NotFound(string? jobId) => new($"job '{Truncate(jobId)}' not found");

    private static string Truncate(string? s) => s is null ? "" : s.Length <= 80 ? s : s[..80] + "…";
}
