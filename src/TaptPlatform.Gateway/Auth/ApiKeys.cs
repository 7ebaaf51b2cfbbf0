using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Telemetry;
using TaptPlatform.Grains;

namespace TaptPlatform.Gateway.Auth;

/// <summary>The claims and policies of the gateway's principals.</summary>
public static class TaptAuth
{
    public const string Scheme = "TaptApiKey";
    public const string Header = "X-Api-Key";
    public const string TenantClaim = "tapt:tenant";
    public const string KeyIdClaim = "tapt:key";
    public const string OperatorRole = "operator";
    public const string TenantRole = "tenant";
    public const string TenantPolicy = "tenant";
    public const string OperatorPolicy = "operator";

    /// <summary>The caller's tenant id (only on endpoints that require the tenant policy).</summary>
    public static string TenantId(this ClaimsPrincipal user) =>
        user.FindFirstValue(TenantClaim) ?? throw new InvalidOperationException("not a tenant principal");

    /// <summary>
    /// The key a request carries: the <c>X-Api-Key</c> header, an <c>Authorization: Bearer</c> header, or, on the
    /// SignalR hub only (browsers cannot set headers on WebSockets), the <c>access_token</c> query parameter (taken
    /// out of the query before anything logs it: <see cref="AccessTokenRedactingContextFactory"/>).
    /// </summary>
    public static string? ReadKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue(Header, out var h) && !string.IsNullOrWhiteSpace(h)) return h.ToString().Trim();
        var auth = request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return auth["Bearer ".Length..].Trim();
        if (request.Path.StartsWithSegments("/hubs") && request.HttpContext.Features.Get<AccessTokenFeature>() is { } q && !string.IsNullOrWhiteSpace(q.Token))
            return q.Token;
        return null;
    }

    /// <summary>The key a tenant principal was authenticated with (kept on its identity for the hub's re-checks).</summary>
    public static string? KeyOf(ClaimsPrincipal user) =>
        user.Identities.FirstOrDefault(i => i.AuthenticationType == Scheme)?.BootstrapContext as string;
}

/// <summary>A validated tenant key.</summary>
public sealed record ApiKeyIdentity(string TenantId, string KeyId, string Name);

/// <summary>
/// Checks tenant keys: first their shape and MAC here (<see cref="ApiKeySigner"/>), so a malformed or forged key is
/// refused without any grain call; then, for a key that passed, with its tenant grain. Both answers of the grain are
/// remembered briefly (keyed by the key's SHA-256, never the key; at most <see cref="MaxEntries"/>), so a refused key
/// presented again does not reach the grain either. A revoked key is forgotten at once on every gateway
/// (<see cref="KeyRevocationListener"/>); should the notice be lost, within <see cref="GatewayOptions.KeyCacheDuration"/>.
/// </summary>
public sealed class ApiKeyValidator(
    IGrainFactory grains,
    ApiKeySigner signer,
    IOptionsMonitor<GatewayOptions> options,
    IOptionsMonitor<ApiKeyOptions> keyOptions,
    GatewayMetrics metrics) : IDisposable
{
    public const int MaxEntries = 10_000;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = MaxEntries });

    public async Task<ApiKeyIdentity?> ValidateAsync(string? secret)
    {
        var shape = signer.Check(secret);
        if (shape is ApiKeyShape.Malformed or ApiKeyShape.BadSignature || shape == ApiKeyShape.Unsigned && !keyOptions.CurrentValue.AcceptUnsignedLegacyKeys)
        {
            metrics.KeyRefused(shape == ApiKeyShape.Unsigned ? "unsigned" : shape == ApiKeyShape.Malformed ? "malformed" : "bad_signature");
            return null;
        }
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(secret!)));
        if (_cache.TryGetValue(hash, out CachedAnswer? hit)) return hit!.Identity;
        var parsed = ApiKeySecrets.Parse(secret)!.Value;
        var info = await grains.GetGrain<ITenantGrain>(parsed.TenantId).ValidateApiKeyAsync(secret!);
        var identity = info is null ? null : new ApiKeyIdentity(parsed.TenantId, info.KeyId, info.Name);
        if (identity is null) metrics.KeyRefused("unknown");
        _cache.Set(hash, new CachedAnswer(identity), new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = options.CurrentValue.KeyCacheDuration });
        return identity;
    }

    /// <summary>Forgets every cached answer for the key (after it was revoked).</summary>
    public void Forget(string tenantId, string keyId)
    {
        foreach (var hash in _cache.Keys)
            if (_cache.TryGetValue(hash, out CachedAnswer? entry) && entry!.Identity is { } i && i.TenantId == tenantId && i.KeyId == keyId) _cache.Remove(hash);
    }

    /// <summary>Forgets every cached answer for the tenant's keys (its erasure revoked them all).</summary>
    public void ForgetTenant(string tenantId)
    {
        foreach (var hash in _cache.Keys)
            if (_cache.TryGetValue(hash, out CachedAnswer? entry) && entry!.Identity?.TenantId == tenantId) _cache.Remove(hash);
    }

    /// <summary>Forgets every cached answer (revocation notices may have been missed).</summary>
    public void ForgetAll() => _cache.Clear();

    public void Dispose() => _cache.Dispose();

    private sealed record CachedAnswer(ApiKeyIdentity? Identity);
}

/// <summary>
/// Authenticates the operator key (from configuration) and tenant keys. A missing key, a malformed one, an unknown
/// one and a revoked one all get the same 401.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyValidator validator,
    IOptionsMonitor<GatewayOptions> gateway) : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var key = TaptAuth.ReadKey(Request);
        if (key is null) return AuthenticateResult.NoResult();
        if (IsOperatorKey(key, gateway.CurrentValue.OperatorKey))
        {
            var op = new ClaimsIdentity([new Claim(ClaimTypes.Name, "operator"), new Claim(ClaimTypes.Role, TaptAuth.OperatorRole)], Scheme.Name);
            return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(op), Scheme.Name));
        }
        var identity = await validator.ValidateAsync(key);
        if (identity is null) return AuthenticateResult.Fail("invalid API key");
        var claims = new ClaimsIdentity(
        [
            new Claim(ClaimTypes.Name, identity.TenantId),
            new Claim(ClaimTypes.Role, TaptAuth.TenantRole),
            new Claim(TaptAuth.TenantClaim, identity.TenantId),
            new Claim(TaptAuth.KeyIdClaim, identity.KeyId),
        ], Scheme.Name)
        {
            // A hub connection's later requests (long polling) reach the hub as a copy of the first, without its
            // features: the identity, which is copied, keeps the key for the hub's re-checks.
            BootstrapContext = key,
        };
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(claims), Scheme.Name));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = $"ApiKey header=\"{TaptAuth.Header}\"";
        return Problems.WriteAsync(Context, StatusCodes.Status401Unauthorized, ErrorCodes.Unauthenticated,
            "Authentication required", $"Send a valid API key in the {TaptAuth.Header} header.");
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Problems.WriteAsync(Context, StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, "Forbidden", "This key may not do that.");

    internal static bool IsOperatorKey(string key, string? operatorKey)
    {
        if (string.IsNullOrEmpty(operatorKey) || operatorKey.Length < 16) return false;
        var a = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        var b = SHA256.HashData(Encoding.UTF8.GetBytes(operatorKey));
        return CryptographicOperations.FixedTimeEquals(a, b);
    }
}
