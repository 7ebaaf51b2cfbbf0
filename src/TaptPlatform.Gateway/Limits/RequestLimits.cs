using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Telemetry;

namespace TaptPlatform.Gateway.Limits;

public enum BodyLimitKind
{
    Json,
    Upload,
    Model,
}

/// <summary>Marks an endpoint whose body may be as large as an upload (every other endpoint gets the JSON limit).</summary>
public sealed record BodyLimitMetadata(BodyLimitKind Kind);

public static class RequestLimits
{
    /// <summary>
    /// Sets each request's body limit from its endpoint (uploads: <see cref="GatewayOptions.MaxUploadBytes"/>; the rest:
    /// <see cref="GatewayOptions.MaxJsonBytes"/>) and refuses a declared length above it at once with 413.
    /// </summary>
    public static IApplicationBuilder UseTaptBodyLimits(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var o = context.RequestServices.GetRequiredService<IOptionsMonitor<GatewayOptions>>().CurrentValue;
        var kind = context.GetEndpoint()?.Metadata.GetMetadata<BodyLimitMetadata>()?.Kind ?? BodyLimitKind.Json;
        var limit = kind switch
        {
            BodyLimitKind.Upload => o.MaxUploadBytes,
            BodyLimitKind.Model => o.MaxModelBytes,
            _ => o.MaxJsonBytes,
        };
        if (context.Request.ContentLength > limit)
        {
            // Answer before reading; the server's own (larger) limit still lets it drain what the client sends, so
            // a client that does not wait for "100 Continue" reads this answer instead of a reset connection.
            await Problems.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge, "Payload too large",
                $"this endpoint accepts at most {limit} bytes ({context.Request.ContentLength} declared)");
            return;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature) feature.MaxRequestBodySize = limit;
        await next(context);
    });

    /// <summary>
    /// A token bucket per tenant over <c>/api</c> and <c>/hubs</c>, chosen before authentication (it runs first, so a
    /// flood of bad keys is refused before any of them is checked): a request with a correctly signed tenant key counts
    /// for that tenant, one with the operator key for the operator, and every other (no key, a malformed or forged key,
    /// an unsigned key of before keys were signed) for its client address under
    /// <see cref="GatewayOptions.Unauthenticated"/>. Refusals are 429 problems with <c>Retry-After</c>.
    /// </summary>
    public static IServiceCollection AddTaptRateLimits(this IServiceCollection services) => services.AddRateLimiter(o =>
    {
        o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
        {
            var path = context.Request.Path;
            if (!path.StartsWithSegments("/api") && !path.StartsWithSegments("/hubs")) return RateLimitPartition.GetNoLimiter("unlimited");
            var gateway = context.RequestServices.GetRequiredService<IOptionsMonitor<GatewayOptions>>().CurrentValue;
            var (partition, requestsPerSecond, burst) = PartitionOf(context, gateway);
            return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = Math.Max(1, burst),
                TokensPerPeriod = Math.Max(1, requestsPerSecond),
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        });
        o.OnRejected = async (context, ct) =>
        {
            var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var r) ? r : TimeSpan.FromSeconds(1);
            context.HttpContext.RequestServices.GetRequiredService<GatewayMetrics>().Limited("requests");
            Problems.SetRetryAfter(context.HttpContext, retry);
            await Problems.WriteAsync(context.HttpContext, StatusCodes.Status429TooManyRequests, ErrorCodes.RateLimited, "Too many requests",
                "the request rate limit of this key (or, without a valid key, of this client address) is exceeded; retry after the time in Retry-After",
                new Dictionary<string, object?> { ["retryAfterSeconds"] = Problems.RetrySecondsOf(retry) });
        };
    });

    /// <summary>Whose bucket a request draws from, from its key alone (checked locally: no grain is asked).</summary>
    internal static (string Partition, int RequestsPerSecond, int Burst) PartitionOf(HttpContext context, GatewayOptions gateway)
    {
        var key = TaptAuth.ReadKey(context.Request);
        if (key is not null && ApiKeyAuthenticationHandler.IsOperatorKey(key, gateway.OperatorKey))
        {
            var defaults = gateway.LimitsFor(null);
            return ("operator", defaults.RequestsPerSecond, defaults.Burst);
        }
        if (key is not null && context.RequestServices.GetRequiredService<ApiKeySigner>().Check(key) == ApiKeyShape.Signed)
        {
            var tenant = ApiKeySecrets.Parse(key)!.Value.TenantId;
            var limits = gateway.LimitsFor(tenant);
            return ("tenant:" + tenant, limits.RequestsPerSecond, limits.Burst);
        }
        return ("address:" + context.Connection.RemoteIpAddress, gateway.Unauthenticated.RequestsPerSecond, gateway.Unauthenticated.Burst);
    }
}
