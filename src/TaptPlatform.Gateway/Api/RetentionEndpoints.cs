using Microsoft.AspNetCore.Http.HttpResults;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// Data retention: a tenant reads its periods and may shorten the operator's (periods as "d.hh:mm:ss", null for the
/// operator's); the operator may run a tenant's sweep at once instead of waiting for its reminder.
/// </summary>
public static class RetentionEndpoints
{
    public static void MapRetentionEndpoints(this RouteGroupBuilder api)
    {
        var tenant = api.MapGroup("/retention").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Retention");
        tenant.MapGet("/", (HttpContext c, IGrainFactory g) => Get(g, c.User.TenantId()))
            .WithSummary("The tenant's retention: the operator's periods, its own, what applies, and what sweeps deleted.");
        tenant.MapPut("/", (HttpContext c, RetentionPolicy? body, IGrainFactory g) => Set(g, c.User.TenantId(), body)).Trail(TrailKinds.RetentionChanged)
            .WithSummary("Sets the tenant's periods per kind (inputs, results, audit, adversarial); each at most the operator's.");

        api.MapPost("/tenants/{tenantId}/retention/sweep", Sweep).Trail(TrailKinds.RetentionSwept).RequireAuthorization(TaptAuth.OperatorPolicy).WithTags("Operator")
            .WithSummary("Runs a tenant's retention sweep now and returns what it deleted.");
    }

    private static async Task<Ok<RetentionStatus>> Get(IGrainFactory grains, string tenantId) =>
        TypedResults.Ok(await grains.GetGrain<IRetentionGrain>(tenantId).GetAsync());

    private static async Task<Results<Ok<RetentionStatus>, ProblemHttpResult>> Set(IGrainFactory grains, string tenantId, RetentionPolicy? body)
    {
        if (body is null) return Problems.Invalid("a body with the periods is required, e.g. {\"inputs\": \"7.00:00:00\"}");
        return TypedResults.Ok(await grains.GetGrain<IRetentionGrain>(tenantId).SetAsync(body));
    }

    private static async Task<Ok<RetentionSweep>> Sweep(string tenantId, IGrainFactory grains)
    {
        // An unknown tenant has no data to sweep (and a sweep must not create its container).
        if (!Identifiers.IsValidTenantId(tenantId) || (await grains.GetGrain<ITenantGrain>(tenantId).ListApiKeysAsync()).Length == 0)
            throw new TaptNotFoundException($"tenant '{(tenantId.Length > 60 ? tenantId[..60] : tenantId)}' not found");
        return TypedResults.Ok(await grains.GetGrain<IRetentionGrain>(tenantId).SweepNowAsync());
    }
}
