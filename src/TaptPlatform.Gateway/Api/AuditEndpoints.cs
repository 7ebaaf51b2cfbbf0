using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;

namespace TaptPlatform.Gateway.Api;

/// <summary>Audit: flagged images across the tenant's jobs, and one flagged image's full record.</summary>
public static class AuditEndpoints
{
    /// <summary>Newest jobs looked at by one listing without a job filter.</summary>
    public const int MaxJobsScanned = 200;

    public static void MapAuditEndpoints(this RouteGroupBuilder api)
    {
        var audit = api.MapGroup("/audit").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Audit");
        audit.MapGet("/", List)
            .WithSummary("Flagged images, newest first; filters: jobId, reason (changedPrediction, closerToAttacked, lowConfidence), label (defended or baseline), since, until, limit.");
        audit.MapGet("/{jobId}/{index:int}", Record).WithSummary("One flagged image's audit record: what was asked, what ran, why it was flagged, every tuned step.");
        audit.MapGet("/{jobId}/{index:int}/download", Download).WithSummary("The audit record as a JSON file.");
    }

    private static async Task<Results<Ok<AuditPage>, ProblemHttpResult>> List(HttpContext c, IGrainFactory g, JobLabels labels,
        string? jobId, string? reason, string? label, DateTimeOffset? since, DateTimeOffset? until, int? limit)
    {
        var tenantId = c.User.TenantId();
        var reasonFilter = FlagReasons.None;
        if (reason is not null && !ResultView.TryParseReason(reason, out reasonFilter))
            return Problems.Invalid("reason: use changedPrediction, closerToAttacked or lowConfidence");
        if (label is { Length: > 200 }) return Problems.Invalid("label: at most 200 characters");
        var take = Math.Clamp(limit ?? 100, 1, 500);
        IEnumerable<string> jobIds = jobId is not null
            ? [g.Job(jobId).GetPrimaryKeyString()]
            : (await g.GetGrain<ITenantGrain>(tenantId).ListJobsAsync()).Reverse().Take(MaxJobsScanned);
        var items = new List<AuditItem>();
        var scanned = 0;
        var truncated = false;
        foreach (var id in jobIds)
        {
            var job = g.GetGrain<IJobGrain>(id);
            JobStatus status;
            try
            {
                status = await job.GetStatusAsync(tenantId);
            }
            catch (TaptNotFoundException) when (jobId is null)
            {
                continue;
            }
            scanned++;
            if (status.Counts.Flagged == 0) continue;
            var names = await labels.ForAsync(tenantId, status);
            int? offset = 0;
            while (offset is { } o)
            {
                var page = await job.GetResultsAsync(tenantId, o, 1000);
                foreach (var r in page.Items)
                {
                    if (!r.Flagged || (reasonFilter != FlagReasons.None && !r.Flags.HasFlag(reasonFilter))) continue;
                    if (since is { } s && r.CompletedAt < s || until is { } u && r.CompletedAt > u) continue;
                    var view = ResultView.From(r, names);
                    if (label is not null && !string.Equals(view.Label, label, StringComparison.OrdinalIgnoreCase)
                        && !string.Equals(view.BaselineLabel, label, StringComparison.OrdinalIgnoreCase)) continue;
                    items.Add(new AuditItem(id, status.Name, view, $"/api/jobs/{id}/images/{r.Index}", $"/api/audit/{id}/{r.Index}"));
                }
                offset = page.NextOffset;
            }
            if (items.Count >= take * 4) { truncated = true; break; }
        }
        var ordered = items.OrderByDescending(i => i.Result.CompletedAt).ThenBy(i => i.Result.Index).ToList();
        truncated |= ordered.Count > take;
        return TypedResults.Ok(new AuditPage([.. ordered.Take(take)], scanned, truncated));
    }

    private static async Task<Ok<AuditRecordView>> Record(string jobId, int index, HttpContext c, IGrainFactory g)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        var json = await job.GetAuditRecordAsync(tenantId, index);
        var artifacts = (await job.ListArtifactsAsync(tenantId))
            .Where(a => a.Name.EndsWith("/" + index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))
            .ToImmutableArray();
        using var doc = JsonDocument.Parse(json);
        return TypedResults.Ok(new AuditRecordView(jobId, index, $"/api/jobs/{jobId}/images/{index}", $"/api/audit/{jobId}/{index}/download", artifacts, doc.RootElement.Clone()));
    }

    private static async Task<FileContentHttpResult> Download(string jobId, int index, HttpContext c, IGrainFactory g)
    {
        var json = await g.Job(jobId).GetAuditRecordAsync(c.User.TenantId(), index);
        return TypedResults.File(Encoding.UTF8.GetBytes(json), "application/json", $"{jobId}-{index:D5}-audit.json");
    }
}
