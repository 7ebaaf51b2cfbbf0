using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>Audit: flagged images across the tenant's jobs, and one flagged image's full record.</summary>
public static class AuditEndpoints
{
    public static void MapAuditEndpoints(this RouteGroupBuilder api)
    {
        var audit = api.MapGroup("/audit").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Audit");
        audit.MapGet("/", List)
            .WithSummary("Flagged images, unreviewed first, then newest first; filters: jobId, reason (changedPrediction, closerToAttacked, lowConfidence), label (defended or baseline), verdict (confirmed-attack, false-alarm, needs-follow-up, unreviewed), since, until, limit; counts by verdict.");
        audit.MapGet("/{jobId}/{index:int}", Record).Trail(TrailKinds.AuditViewed)
            .WithSummary("One flagged image's audit record: what was asked, what ran, why it was flagged, every tuned step.");
        audit.MapGet("/{jobId}/{index:int}/download", Download).Trail(TrailKinds.AuditRecordExported).WithSummary("The audit record as a JSON file.");
    }

    private static async Task<Results<Ok<AuditPage>, ProblemHttpResult>> List(HttpContext c, IGrainFactory g, JobLabels labels, ReviewStore reviews,
        string? jobId, string? reason, string? label, string? verdict, DateTimeOffset? since, DateTimeOffset? until, int? limit)
    {
        var tenantId = c.User.TenantId();
        var reasonFilter = FlagReasons.None;
        if (reason is not null && !ResultView.TryParseReason(reason, out reasonFilter))
            return Problems.Invalid("reason: use changedPrediction, closerToAttacked or lowConfidence");
        if (label is { Length: > 200 }) return Problems.Invalid("label: at most 200 characters");
        if (verdict is not null && !Verdicts.IsKnown(verdict) && verdict != Verdicts.Unreviewed)
            return Problems.Invalid("verdict: use confirmed-attack, false-alarm, needs-follow-up or unreviewed");
        var take = Math.Clamp(limit ?? 100, 1, 500);
        var current = await reviews.CurrentAsync(tenantId, jobId is null ? null : g.Job(jobId).GetPrimaryKeyString(), c.RequestAborted);
        var counts = new[] { Verdicts.Unreviewed }.Concat(Verdicts.All).ToDictionary(v => v, _ => 0);
        var items = new List<AuditItem>();
        var scanned = 0;
        var truncated = false;
        await foreach (var status in TenantResults.JobsAsync(g, tenantId, jobId, c.RequestAborted))
        {
            scanned++;
            if (status.Counts.Flagged == 0) continue;
            var id = status.JobId;
            var names = await labels.ForAsync(tenantId, status);
            await foreach (var r in TenantResults.ResultsAsync(g, tenantId, id, c.RequestAborted))
            {
                if (!r.Flagged || (reasonFilter != FlagReasons.None && !r.Flags.HasFlag(reasonFilter))) continue;
                if (since is { } s && r.CompletedAt < s || until is { } u && r.CompletedAt > u) continue;
                var view = ResultView.From(r, names);
                if (label is not null && !string.Equals(view.Label, label, StringComparison.OrdinalIgnoreCase)
                    && !string.Equals(view.BaselineLabel, label, StringComparison.OrdinalIgnoreCase)) continue;
                var review = current.GetValueOrDefault((id, r.Index));
                var itsVerdict = review?.Verdict ?? Verdicts.Unreviewed;
                counts[itsVerdict]++;
                if (verdict is not null && verdict != itsVerdict) continue;
                items.Add(new AuditItem(id, status.Name, view, $"/api/jobs/{id}/images/{r.Index}", $"/api/audit/{id}/{r.Index}", review));
            }
            if (items.Count >= take * 4) { truncated = true; break; }
        }
        // Unreviewed first: a reviewer works down the list.
        var ordered = items.OrderBy(i => i.Review is null ? 0 : 1).ThenByDescending(i => i.Result.CompletedAt).ThenBy(i => i.JobId, StringComparer.Ordinal)
            .ThenBy(i => i.Result.Index).ToList();
        truncated |= ordered.Count > take;
        return TypedResults.Ok(new AuditPage([.. ordered.Take(take)], scanned, truncated, counts.ToImmutableDictionary()));
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
