using Microsoft.AspNetCore.Http.HttpResults;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Telemetry;

namespace TaptPlatform.Gateway.Api;

/// <summary>How a start of a job or an evaluation meets the running-slot limits: the limits it asks for, the answer to a refusal.</summary>
public static class RunningSlots
{
    /// <summary>The limits a tenant's job or evaluation starts under.</summary>
    public static JobLimits LimitsFor(GatewayOptions o, string tenantId)
    {
        var limits = o.LimitsFor(tenantId);
        return new(limits.MaxConcurrentJobs, o.MaxRunningJobs, limits.ImagesPerDay);
    }

    /// <summary>A start refused by the tenant's concurrent-jobs or daily-images quota or the cluster's running-jobs limit: 429 with Retry-After.</summary>
    public static ProblemHttpResult Refused(HttpContext c, TaptQuotaException e, GatewayMetrics metrics)
    {
        if (e.Kind == QuotaKind.ImagesPerDay)
        {
            metrics.Limited("images_per_day");
            return Problems.TooMany(c, e.RetryAfter, ErrorCodes.QuotaImagesPerDay, e.Message,
                new Dictionary<string, object?> { ["imagesToday"] = e.Used, ["imagesPerDay"] = e.Limit });
        }
        if (e.Kind == QuotaKind.ConcurrentJobs)
        {
            metrics.Limited("concurrent_jobs");
            return Problems.TooMany(c, e.RetryAfter, ErrorCodes.QuotaConcurrentJobs, e.Message);
        }
        metrics.Limited("cluster_running_jobs");
        return Problems.TooMany(c, e.RetryAfter, ErrorCodes.ClusterBusy, e.Message,
            new Dictionary<string, object?> { ["runningJobs"] = e.Used, ["maxRunningJobs"] = e.Limit });
    }
}
