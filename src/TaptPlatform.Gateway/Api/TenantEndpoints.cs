using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Live;

namespace TaptPlatform.Gateway.Api;

/// <summary>Tenants and API keys: the operator creates tenants and manages any tenant's keys; a tenant manages its own.</summary>
public static class TenantEndpoints
{
    public static void MapTenantEndpoints(this RouteGroupBuilder api)
    {
        var ops = api.MapGroup("/tenants").RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator");
        ops.MapPost("/", CreateTenant).Trail(TrailKinds.TenantCreated).WithSummary("Creates a tenant and issues its first API key (operator key).");
        ops.MapGet("/{tenantId}/keys", (string tenantId, IGrainFactory g) => ListKeys(g, ValidTenant(tenantId)))
            .WithSummary("Lists a tenant's keys (never their secrets).");
        ops.MapPost("/{tenantId}/keys", (string tenantId, CreateKeyRequest? body, IGrainFactory g) => IssueKey(g, ValidTenant(tenantId), body)).Trail(TrailKinds.KeyIssued)
            .WithSummary("Issues another key for a tenant.");
        ops.MapDelete("/{tenantId}/keys/{keyId}", (string tenantId, string keyId, IGrainFactory g, ApiKeyValidator v, LiveConnections live) =>
            Revoke(g, v, live, ValidTenant(tenantId), keyId)).Trail(TrailKinds.KeyRevoked).WithSummary("Revokes a tenant's key.");

        var keys = api.MapGroup("/keys").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Keys");
        keys.MapGet("/", (HttpContext c, IGrainFactory g) => ListKeys(g, c.User.TenantId())).WithSummary("Lists the tenant's keys.");
        keys.MapPost("/", (HttpContext c, CreateKeyRequest? body, IGrainFactory g) => IssueKey(g, c.User.TenantId(), body)).Trail(TrailKinds.KeyIssued)
            .WithSummary("Issues another key for the tenant (the secret is shown once).");
        keys.MapPost("/{keyId}/rotate", Rotate).Trail(TrailKinds.KeyRotated).WithSummary("Issues a new key with the same name and revokes the old one.");
        keys.MapDelete("/{keyId}", (string keyId, HttpContext c, IGrainFactory g, ApiKeyValidator v, LiveConnections live) =>
            Revoke(g, v, live, c.User.TenantId(), keyId)).Trail(TrailKinds.KeyRevoked).WithSummary("Revokes one of the tenant's keys (live connections using it are closed).");

        api.MapGet("/usage", Usage).RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Keys")
            .WithSummary("The tenant's quotas and what it used today.");
    }

    private static string ValidTenant(string tenantId) =>
        Identifiers.IsValidTenantId(tenantId) ? tenantId : throw new TaptNotFoundException($"tenant '{(tenantId.Length > 60 ? tenantId[..60] : tenantId)}' not found");

    private static async Task<Results<Created<TenantCreated>, ProblemHttpResult>> CreateTenant(CreateTenantRequest? body, IGrainFactory grains)
    {
        if (body?.Id is not { } id || !Identifiers.IsValidTenantId(id))
            return Problems.Invalid("id: use 3-50 lower-case letters, digits and single inner hyphens");
        var keyName = body.KeyName ?? "default";
        if (!Identifiers.IsValidName(keyName)) return Problems.Invalid("keyName: use 1-64 letters, digits, '.', '_' and '-'");
        var tenant = grains.GetGrain<ITenantGrain>(id);
        if ((await tenant.ListApiKeysAsync()).Length > 0)
            return Problems.Result(409, ErrorCodes.TenantExists, "Tenant exists", $"tenant '{id}' already exists: issue more keys with POST /api/tenants/{id}/keys");
        var key = await tenant.CreateApiKeyAsync(keyName);
        return TypedResults.Created($"/api/tenants/{id}/keys", new TenantCreated(id, key));
    }

    private static async Task<Ok<ImmutableArray<ApiKeyInfo>>> ListKeys(IGrainFactory grains, string tenantId) =>
        TypedResults.Ok(await grains.GetGrain<ITenantGrain>(tenantId).ListApiKeysAsync());

    private static async Task<Results<Created<ApiKeyIssued>, ProblemHttpResult>> IssueKey(IGrainFactory grains, string tenantId, CreateKeyRequest? body)
    {
        var name = body?.Name ?? "default";
        if (!Identifiers.IsValidName(name)) return Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'");
        var key = await grains.GetGrain<ITenantGrain>(tenantId).CreateApiKeyAsync(name);
        return TypedResults.Created("/api/keys", key);
    }

    private static async Task<Created<KeyRotated>> Rotate(string keyId, HttpContext context, IGrainFactory grains, ApiKeyValidator validator, LiveConnections live)
    {
        var tenantId = context.User.TenantId();
        var tenant = grains.GetGrain<ITenantGrain>(tenantId);
        var old = (await tenant.ListApiKeysAsync()).FirstOrDefault(k => k.KeyId == keyId && k.RevokedAt is null)
            ?? throw new TaptNotFoundException($"API key '{Short(keyId)}' not found");
        var fresh = await tenant.CreateApiKeyAsync(old.Name);
        await RevokeCore(tenant, validator, live, tenantId, keyId);
        return TypedResults.Created("/api/keys", new KeyRotated(fresh, keyId));
    }

    private static async Task<NoContent> Revoke(IGrainFactory grains, ApiKeyValidator validator, LiveConnections live, string tenantId, string keyId)
    {
        var tenant = grains.GetGrain<ITenantGrain>(tenantId);
        if (!(await tenant.ListApiKeysAsync()).Any(k => k.KeyId == keyId)) throw new TaptNotFoundException($"API key '{Short(keyId)}' not found");
        await RevokeCore(tenant, validator, live, tenantId, keyId);
        return TypedResults.NoContent();
    }

    private static async Task RevokeCore(ITenantGrain tenant, ApiKeyValidator validator, LiveConnections live, string tenantId, string keyId)
    {
        await tenant.RevokeApiKeyAsync(keyId);
        validator.Forget(tenantId, keyId);
        live.AbortKey(tenantId, keyId);
    }

    private static async Task<Ok<UsageView>> Usage(HttpContext context, IGrainFactory grains, IOptionsMonitor<GatewayOptions> options)
    {
        var tenantId = context.User.TenantId();
        var limits = options.CurrentValue.LimitsFor(tenantId);
        var usage = await grains.GetGrain<ITenantQuotaGrain>(tenantId).GetUsageAsync();
        return TypedResults.Ok(new UsageView(usage, limits.ImagesPerDay, limits.MaxConcurrentJobs, limits.RequestsPerSecond));
    }

    private static string Short(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
