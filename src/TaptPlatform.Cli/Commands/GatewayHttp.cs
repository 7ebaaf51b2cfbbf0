using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace TaptPlatform.Cli.Commands;

/// <summary>How a gateway client waits: how often a 429 is waited out, and how long an attempt and a whole request may take.</summary>
public sealed record GatewayRetry(int TooManyRequestsRetries, TimeSpan AttemptTimeout, TimeSpan TotalTimeout)
{
    /// <summary><c>tapt submit</c> and <c>tapt audit</c>: ten 429s waited out, as many minutes as an upload may take.</summary>
    public static GatewayRetry Interactive { get; } = new(10, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30));

    /// <summary><c>tapt loadtest</c>: 429s waited out until each request's own <see cref="GatewayHttp.Deadline"/>.</summary>
    public static GatewayRetry UntilDeadline { get; } = new(int.MaxValue, TimeSpan.FromMinutes(5), TimeSpan.FromHours(24));
}

/// <summary>
/// The CLI's HTTP clients of a gateway: an <see cref="IHttpClientFactory"/> client with the standard resilience handler
/// (rate limiter, total timeout, retry, circuit breaker, attempt timeout), its retry narrowed to what is safe to send twice:
/// <list type="bullet">
/// <item>idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS) and <c>POST /api/jobs/{id}/start</c>, which the gateway makes
/// idempotent (starting a running or completed job answers its state): retried on any transient failure (connection errors,
/// timeouts, 408, 429, 5xx);</item>
/// <item>every other POST (create a job, upload images, tenants, vocabularies, configurations): retried only on a 429 of the
/// request rate limiter (<c>rate_limited</c>), which refuses a request before its endpoint runs. Never on a 5xx, a timeout or
/// a lost connection (the gateway may have acted), nor on a quota 429 of an upload (an upload stores its images in chunks,
/// so earlier chunks may already be in the job).</item>
/// </list>
/// A 429 waits for its Retry-After (0.1 to 30 s) and is retried <see cref="GatewayRetry.TooManyRequestsRetries"/> times at most,
/// and never past the request's <see cref="Deadline"/>; other transient failures are retried 3 times with exponential backoff.
/// </summary>
public sealed class GatewayHttp : IDisposable
{
    /// <summary>A request option: no retry would start after this time.</summary>
    public static readonly HttpRequestOptionsKey<DateTimeOffset> Deadline = new("tapt-deadline");

    private const int TransientRetries = 3;
    private readonly ServiceProvider _services;

    /// <param name="primary">The innermost handler (default: the factory's).</param>
    /// <param name="perAttempt">A handler that sees every attempt (each retry too).</param>
    public GatewayHttp(Uri baseAddress, GatewayRetry retry, Func<HttpMessageHandler>? primary = null, Func<DelegatingHandler>? perAttempt = null)
    {
        var services = new ServiceCollection();
        var builder = services.AddHttpClient(nameof(GatewayHttp), c =>
        {
            c.BaseAddress = baseAddress;
            c.Timeout = Timeout.InfiniteTimeSpan;   // the pipeline's timeouts apply
        }).SetHandlerLifetime(Timeout.InfiniteTimeSpan);
        if (primary is not null) builder.ConfigurePrimaryHttpMessageHandler(primary);
        builder.AddStandardResilienceHandler(o => Configure(o, retry));
        if (perAttempt is not null) builder.AddHttpMessageHandler(perAttempt);
        _services = services.BuildServiceProvider();
        Client = _services.GetRequiredService<IHttpClientFactory>().CreateClient(nameof(GatewayHttp));
    }

    public HttpClient Client { get; }

    private static void Configure(HttpStandardResilienceOptions o, GatewayRetry retry)
    {
        o.Retry.MaxRetryAttempts = retry.TooManyRequestsRetries;
        o.Retry.BackoffType = DelayBackoffType.Exponential;
        o.Retry.Delay = TimeSpan.FromSeconds(1);
        o.Retry.MaxDelay = MaxWait;
        o.Retry.UseJitter = true;
        o.Retry.ShouldRetryAfterHeader = false;   // DelayGenerator reads it, bounded
        o.Retry.ShouldHandle = args => ShouldRetryAsync(args.Outcome, args.Context, args.AttemptNumber);
        o.Retry.DelayGenerator = args => ValueTask.FromResult(args.Outcome.Result is { StatusCode: HttpStatusCode.TooManyRequests } r ? RetryAfter(r) : (TimeSpan?)null);
        o.AttemptTimeout.Timeout = retry.AttemptTimeout;
        o.TotalRequestTimeout.Timeout = retry.TotalTimeout;
        // A 429 is the gateway's back-pressure, waited out; only failures of the gateway itself count towards opening the circuit.
        o.CircuitBreaker.SamplingDuration = 2 * retry.AttemptTimeout;
        o.CircuitBreaker.ShouldHandle = args => ValueTask.FromResult(
            args.Outcome.Exception is not null || args.Outcome.Result is { StatusCode: >= HttpStatusCode.InternalServerError });
        // The load test has thousands of requests in flight (many waiting out a 429): no client-side cap.
        o.RateLimiter.DefaultRateLimiterOptions.PermitLimit = 1_000_000;
    }

    private static async ValueTask<bool> ShouldRetryAsync(Outcome<HttpResponseMessage> outcome, ResilienceContext context, int attempt)
    {
        var request = context.GetRequestMessage();
        var tooMany = outcome.Result is { StatusCode: HttpStatusCode.TooManyRequests };
        if (!tooMany && attempt >= TransientRetries) return false;
        if (request is not null && request.Options.TryGetValue(Deadline, out var deadline)
            && DateTimeOffset.UtcNow + (tooMany ? RetryAfter(outcome.Result!) : TimeSpan.Zero) > deadline)
            return false;
        if (request is null || IsIdempotent(request)) return HttpClientResiliencePredicates.IsTransient(outcome);
        return tooMany && await ProblemCodeAsync(outcome.Result!, context.CancellationToken) == "rate_limited";
    }

    private static bool IsIdempotent(HttpRequestMessage request) =>
        request.Method != HttpMethod.Post && request.Method != HttpMethod.Patch
        || request.Method == HttpMethod.Post && request.RequestUri?.AbsolutePath.EndsWith("/start", StringComparison.Ordinal) == true
            && request.RequestUri.AbsolutePath.Contains("/api/jobs/", StringComparison.Ordinal);

    private static readonly TimeSpan MinWait = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(30);

    /// <summary>The response's Retry-After (1 s without one), between 0.1 and 30 s.</summary>
    public static TimeSpan RetryAfter(HttpResponseMessage response)
    {
        var wait = response.Headers.RetryAfter?.Delta
            ?? (response.Headers.RetryAfter?.Date is { } date ? date - DateTimeOffset.UtcNow : TimeSpan.FromSeconds(1));
        return wait < MinWait ? MinWait : wait > MaxWait ? MaxWait : wait;
    }

    /// <summary>The <c>code</c> of an RFC 7807 problem body, or null (the body is buffered, so the caller can still read it).</summary>
    public static async Task<string?> ProblemCodeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            var body = await response.Content.ReadAsStringAsync(ct);
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("code", out var c) ? c.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        _services.Dispose();
    }
}
