using Microsoft.AspNetCore.Http.HttpResults;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Api;

/// <summary>The answer of <c>POST /api/erasures/verify</c>.</summary>
public sealed record ErasureVerification(bool Valid, string? TenantId, string Detail);

/// <summary>
/// Tenant erasure (operator key): <c>DELETE /api/tenants/{id}</c> revokes every key of the tenant before it answers 202
/// and starts the durable erasure; its progress and, at the end, its signed summary are at
/// <c>GET /api/tenants/{id}/erasure</c>; <c>POST /api/erasures/verify</c> checks a summary's signature. None of these
/// writes to the tenant's audit trail: the trail is erased with the tenant, and the signed summary is the operator's record.
/// </summary>
public static class ErasureEndpoints
{
    public static void MapErasureEndpoints(this RouteGroupBuilder api)
    {
        api.MapDelete("/tenants/{tenantId}", Erase).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator")
            .WithSummary("Erases a tenant: its keys are revoked before the 202; then every job, evaluation, blob, table row and grain state of it is deleted by a durable job.");
        api.MapGet("/tenants/{tenantId}/erasure", Progress).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator")
            .WithSummary("The erasure's phase and counts per kind so far; when done, its signed summary.");
        api.MapPost("/erasures/verify", Verify).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator")
            .WithSummary("Checks that an erasure summary (as GET .../erasure returned it) carries the platform's signature of exactly its content.");
    }

    private static async Task<Accepted<ErasureStatus>> Erase(string tenantId, IGrainFactory grains, ApiKeyValidator validator, LiveConnections live)
    {
        var id = ValidTenant(tenantId);
        var keys = await grains.GetGrain<ITenantGrain>(id).ListApiKeysAsync();
        var status = await grains.GetGrain<ITenantErasureGrain>(id).StartAsync();
        // Revoked in the tenant grain; this gateway forgets them at once (others within their key cache's lifetime).
        validator.ForgetTenant(id);
        foreach (var key in keys) live.AbortKey(id, key.KeyId);
        return TypedResults.Accepted($"/api/tenants/{id}/erasure", status);
    }

    private static async Task<Ok<ErasureStatus>> Progress(string tenantId, IGrainFactory grains)
    {
        var id = ValidTenant(tenantId);
        var status = await grains.GetGrain<ITenantErasureGrain>(id).GetAsync();
        return status.Phase == ErasurePhase.None ? throw new TaptNotFoundException($"tenant '{id}' has no erasure") : TypedResults.Ok(status);
    }

    private static Results<Ok<ErasureVerification>, ProblemHttpResult> Verify(ErasureSummary? summary, ErasureSummarySigner signer)
    {
        if (summary is null || summary.TenantId is null || summary.Blobs is null || summary.GrainStates is null || summary.TableRows is null || summary.Jobs.IsDefault)
            return Problems.Invalid("send the erasure summary as GET /api/tenants/{id}/erasure returned it (its \"summary\" member)");
        var valid = signer.Verify(summary);
        return TypedResults.Ok(new ErasureVerification(valid, summary.TenantId, valid
            ? "the signature matches: this summary was written by the platform and has not been altered"
            : "the signature does not match: the summary was altered, or not signed with this platform's key"));
    }

    private static string ValidTenant(string tenantId) =>
        Identifiers.IsValidTenantId(tenantId) ? tenantId : throw new TaptNotFoundException($"tenant '{(tenantId.Length > 60 ? tenantId[..60] : tenantId)}' not found");
}
