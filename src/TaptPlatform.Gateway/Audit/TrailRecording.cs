using System.Collections.Immutable;
using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Grains.Retention;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Audit;

/// <summary>The kinds of trail entry.</summary>
public static class TrailKinds
{
    public const string TenantCreated = "tenant.created";
    public const string KeyIssued = "key.issued";
    public const string KeyRotated = "key.rotated";
    public const string KeyRevoked = "key.revoked";
    public const string VocabularyCreated = "vocabulary.created";
    public const string VocabularyVersioned = "vocabulary.versioned";
    public const string VocabularyDeleted = "vocabulary.deleted";
    public const string ConfigurationCreated = "configuration.created";
    public const string ConfigurationVersioned = "configuration.versioned";
    public const string ConfigurationDeleted = "configuration.deleted";
    public const string JobCreated = "job.created";
    public const string ImagesUploaded = "images.uploaded";
    public const string JobStarted = "job.started";
    public const string JobCancelled = "job.cancelled";
    public const string EvaluationCreated = "evaluation.created";
    public const string EvaluationImagesUploaded = "evaluation.images-uploaded";
    public const string EvaluationStarted = "evaluation.started";
    public const string EvaluationCancelled = "evaluation.cancelled";
    public const string AuditViewed = "audit.viewed";
    public const string VerdictRecorded = "verdict.recorded";
    public const string ResultsExported = "export.results";
    public const string AuditRecordExported = "export.audit-record";
    public const string BundleExported = "export.bundle";
    public const string TrailExported = "export.trail";
    public const string PromptArtifactUploaded = "prompt-artifact.uploaded";
    public const string PromptArtifactDeleted = "prompt-artifact.deleted";
    public const string TrainingCreated = "training.created";
    public const string TrainingImagesUploaded = "training.images-uploaded";
    public const string TrainingStarted = "training.started";
    public const string TrainingCancelled = "training.cancelled";
    public const string TrainingConfigured = "training.configured";
    public const string RetentionChanged = "retention.changed";
    public const string RetentionSwept = "retention.swept";

    /// <summary>Written by the retention sweep itself (actor <c>retention</c>), with the counts it deleted per kind.</summary>
    public const string RetentionDeleted = RetentionGrain.TrailKind;

    /// <summary>A kind filter: letters, digits, '.', '-' (a prefix such as <c>key</c> matches every <c>key.*</c>).</summary>
    public static bool IsValidFilter(string kind) => kind.Length is > 0 and <= 64 && kind.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-');
}

/// <summary>The endpoint metadata naming the trail entry a successful call records.</summary>
public sealed record TrailAction(string Kind);

/// <summary>
/// Records the audit trail from one place: an endpoint marked with <see cref="Trail{TBuilder}"/> gets a filter that,
/// after its handler succeeded (2xx), appends who did what on what to the tenant's trail. What it acted on comes from
/// the route (job id, index, key id, name, version) and from the handler's typed result (the created job's id, the
/// issued key's id, the number of images stored), so no handler writes trail entries itself.
/// </summary>
public static class TrailRecording
{
    private static readonly string[] RouteTargets = ["tenantId", "jobId", "index", "keyId", "name", "version"];
    private static readonly string[] QueryTargets = ["since", "until", "format", "kind"];

    public static TBuilder Trail<TBuilder>(this TBuilder builder, string kind) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new TrailAction(kind)).AddEndpointFilter(async (context, next) =>
        {
            var result = await next(context);
            var http = context.HttpContext;
            var inner = result is INestedHttpResult nested ? nested.Result : result;
            var status = inner is IStatusCodeHttpResult { StatusCode: { } s } ? s : http.Response.StatusCode;
            if (status is >= 200 and < 300 || AcceptedBeforeRefusal(inner) > 0) await http.RequestServices.GetRequiredService<TrailRecorder>().RecordAsync(http, kind, status, inner);
            return result;
        });

    /// <summary>The images an upload stored before it was refused part-way (a quota, too many images): they were uploaded all the same.</summary>
    private static int AcceptedBeforeRefusal(object? result) =>
        result is ProblemHttpResult p && p.ProblemDetails.Extensions.TryGetValue("accepted", out var a) && a is AcceptedImage[] accepted ? accepted.Length : 0;

    /// <summary>What the call acted on: route values, the range and format of exports, and what the result names.</summary>
    internal static ImmutableDictionary<string, string> TargetOf(HttpContext http, object? result)
    {
        var target = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var name in RouteTargets)
            if (http.Request.RouteValues.TryGetValue(name, out var v) && v?.ToString() is { Length: > 0 and <= 200 } text) target[name] = text;
        foreach (var name in QueryTargets)
            if (http.Request.Query.TryGetValue(name, out var q) && q.ToString() is { Length: > 0 and <= 200 } text) target[name] = text;
        if (AcceptedBeforeRefusal(result) is > 0 and var stored) target["accepted"] = stored.ToString(CultureInfo.InvariantCulture);
        var value = (result as IValueHttpResult)?.Value;
        switch (value)
        {
            case JobView job: target["jobId"] = job.JobId; break;
            case ApiKeyIssued key: target["keyId"] = key.KeyId; target["keyName"] = key.Name; break;
            case KeyRotated rotated: target["keyId"] = rotated.Key.KeyId; target["revokedKeyId"] = rotated.RevokedKeyId; break;
            case TenantCreated tenant: target["tenantId"] = tenant.TenantId; target["keyId"] = tenant.Key.KeyId; break;
            case UploadReceipt receipt:
                target["accepted"] = receipt.Accepted.Length.ToString(CultureInfo.InvariantCulture);
                target["rejected"] = receipt.Rejected.Length.ToString(CultureInfo.InvariantCulture);
                break;
            case VocabularyVersion vocabulary: target["name"] = vocabulary.Name; target["version"] = vocabulary.Version.ToString(CultureInfo.InvariantCulture); break;
            case PromptConfiguration configuration: target["name"] = configuration.Name; target["version"] = configuration.Version.ToString(CultureInfo.InvariantCulture); break;
            case ReviewView { Current: { } review }: target["verdict"] = review.Verdict; target["revision"] = review.Revision.ToString(CultureInfo.InvariantCulture); break;
            case EvaluationStatus evaluation: target["jobId"] = evaluation.JobId; break;
            case PromptTrainingStatus training: target["jobId"] = training.JobId; break;
        }
        return target.ToImmutable();
    }
}

/// <summary>Appends trail entries for <see cref="TrailRecording"/>; a failed append is logged, never turned into a failed call.</summary>
public sealed class TrailRecorder(AuditTrailStore store, TimeProvider clock, ILogger<TrailRecorder> log)
{
    public async Task RecordAsync(HttpContext http, string kind, int status, object? result)
    {
        var target = TrailRecording.TargetOf(http, result);
        var isTenant = http.User.IsInRole(TaptAuth.TenantRole);
        var tenantId = isTenant ? http.User.TenantId() : target.TryGetValue("tenantId", out var named) ? named : null;
        if (tenantId is null || !Identifiers.IsValidTenantId(tenantId)) return;
        var actor = isTenant ? http.User.FindFirst(TaptAuth.KeyIdClaim)?.Value ?? "unknown" : TaptAuth.OperatorRole;
        var entry = new TrailEntry(Guid.CreateVersion7().ToString("N"), clock.GetUtcNow(), kind, actor, http.Request.Method, http.Request.Path.Value ?? "",
            status, isTenant ? target.Remove("tenantId") : target);
        try
        {
            // Not the request's token: an entry for something done is written even when the caller went away.
            await store.AppendAsync(tenantId, entry, CancellationToken.None);
        }
        catch (Exception e)
        {
            log.LogError(e, "Could not append {Kind} by {Actor} to the audit trail of {Tenant}", kind, actor, tenantId);
        }
    }
}
