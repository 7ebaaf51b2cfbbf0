using System.Runtime.CompilerServices;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Api;

/// <summary>The tenant's jobs and their results as the audit views read them (the list, trends, bundles).</summary>
internal static class TenantResults
{
    /// <summary>Newest jobs looked at by one audit view without a job filter.</summary>
    public const int MaxJobsScanned = 200;

    /// <summary>The one job asked for (404 when it is not the tenant's), or the tenant's newest <see cref="MaxJobsScanned"/> jobs, newest first.</summary>
    public static async IAsyncEnumerable<JobStatus> JobsAsync(IGrainFactory g, string tenantId, string? jobId, [EnumeratorCancellation] CancellationToken ct = default)
    {
        IEnumerable<string> ids = jobId is not null
            ? [g.Job(jobId).GetPrimaryKeyString()]
            : (await g.GetGrain<ITenantGrain>(tenantId).ListJobsAsync()).Reverse().Take(MaxJobsScanned);
        foreach (var id in ids)
        {
            ct.ThrowIfCancellationRequested();
            JobStatus status;
            try
            {
                status = await g.GetGrain<IJobGrain>(id).GetStatusAsync(tenantId);
            }
            catch (TaptNotFoundException) when (jobId is null)
            {
                continue;   // listed, never created
            }
            yield return status;
        }
    }

    /// <summary>Every result of a job, in image order, a page of 1000 at a time.</summary>
    public static async IAsyncEnumerable<ImageResult> ResultsAsync(IGrainFactory g, string tenantId, string jobId, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var job = g.GetGrain<IJobGrain>(jobId);
        int? offset = 0;
        while (offset is { } o)
        {
            ct.ThrowIfCancellationRequested();
            var page = await job.GetResultsAsync(tenantId, o, 1000);
            foreach (var r in page.Items) yield return r;
            offset = page.NextOffset;
        }
    }

    /// <summary>A time range from optional bounds: the last <paramref name="defaultDays"/> days up to now unless given; null when it is empty or longer than a year.</summary>
    public static (DateTimeOffset Since, DateTimeOffset Until)? Range(DateTimeOffset? since, DateTimeOffset? until, DateTimeOffset now, int defaultDays = 30)
    {
        var u = until ?? now;
        var s = since ?? u.AddDays(-defaultDays);
        return s > u || u - s > TimeSpan.FromDays(366) ? null : (s, u);
    }
}
