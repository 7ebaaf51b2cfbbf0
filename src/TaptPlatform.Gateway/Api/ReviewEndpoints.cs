using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// Reviews of flagged images: an auditor records a verdict (confirmed-attack, false-alarm, needs-follow-up) and a
/// note; a later verdict replaces it as the current one, and every verdict stays in the image's history.
/// </summary>
public static class ReviewEndpoints
{
    /// <summary>The reviews, the trail, flag trends and audit bundles, with the services they use.</summary>
    public static IServiceCollection AddTaptAuditWorkflow(this IServiceCollection services)
    {
        services.AddSingleton(sp => new ReviewStore(sp.GetRequiredService<TenantContainers>()));
        services.TryAddSingleton(sp => new AuditTrailStore(sp.GetRequiredService<TenantContainers>()));
        services.AddSingleton<TrailRecorder>();
        return services;
    }

    public static void MapAuditWorkflow(this RouteGroupBuilder api)
    {
        var audit = api.MapGroup("/audit").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Audit");
        audit.MapGet("/{jobId}/{index:int}/reviews", History).WithSummary("A flagged image's current verdict and every verdict recorded on it, oldest first.");
        audit.MapPost("/{jobId}/{index:int}/reviews", Review).Trail(TrailKinds.VerdictRecorded)
            .WithSummary("Records a verdict on a flagged image: {verdict: confirmed-attack | false-alarm | needs-follow-up, note, expectedRevision}; 409 when expectedRevision is not the current one.");
        audit.MapGet("/trends", TrendEndpoints.Trends)
            .WithSummary("Flag rate, changed-prediction rate and verdict mix by UTC day, per prompt configuration and vocabulary; since, until (default: the last 30 days), configuration, vocabulary.");
        audit.MapGet("/bundle", AuditBundle.Export).Trail(TrailKinds.BundleExported)
            .WithSummary("An audit bundle for a time range (since, until; optional jobId), streamed as a zip: flagged images, audit records, verdict histories, trail entries and index.csv.");
        TrailEndpoints.Map(api);
    }

    private static async Task<Ok<ReviewView>> History(string jobId, int index, HttpContext c, IGrainFactory g, ReviewStore reviews)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        await job.GetAuditRecordAsync(tenantId, index);   // 404 unless the tenant's job flagged this image
        var id = job.GetPrimaryKeyString();
        var history = await reviews.HistoryAsync(tenantId, id, index, c.RequestAborted);
        return TypedResults.Ok(new ReviewView(id, index, history.IsEmpty ? null : history[^1], history));
    }

    private static async Task<Results<Created<ReviewView>, ProblemHttpResult>> Review(string jobId, int index, ReviewRequest? body, HttpContext c,
        IGrainFactory g, ReviewStore reviews, TimeProvider clock)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        await job.GetAuditRecordAsync(tenantId, index);
        if (body is null) return Problems.Invalid("send a JSON body {\"verdict\", \"note\"}");
        if (!Verdicts.IsKnown(body.Verdict)) return Problems.Invalid("verdict: use confirmed-attack, false-alarm or needs-follow-up");
        var note = string.IsNullOrWhiteSpace(body.Note) ? null : body.Note.Trim();
        if (note is { Length: > ReviewStore.MaxNoteLength }) return Problems.Invalid($"note: at most {ReviewStore.MaxNoteLength} characters");
        if (note is not null && note.Any(ch => char.IsControl(ch) && ch is not '\n' and not '\r' and not '\t'))
            return Problems.Invalid("note: no control characters other than line breaks and tabs");
        if (body.ExpectedRevision is < 0) return Problems.Invalid("expectedRevision must not be negative");
        var id = job.GetPrimaryKeyString();
        var reviewer = c.User.FindFirst(TaptAuth.KeyIdClaim)?.Value ?? "unknown";
        try
        {
            await reviews.AppendAsync(tenantId, id, index, body.Verdict!, note, reviewer, clock.GetUtcNow(), body.ExpectedRevision, CancellationToken.None);
        }
        catch (ReviewConflictException e)
        {
            return Problems.Result(409, ErrorCodes.Conflict, "Verdict changed", e.Message,
                new Dictionary<string, object?> { ["currentRevision"] = e.CurrentRevision });
        }
        var history = await reviews.HistoryAsync(tenantId, id, index, c.RequestAborted);
        return TypedResults.Created($"/api/audit/{id}/{index}/reviews", new ReviewView(id, index, history[^1], history));
    }
}
