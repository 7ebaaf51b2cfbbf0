using Microsoft.AspNetCore.Http.HttpResults;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Orleans.Runtime;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Errors;

/// <summary>The stable error codes of the API (the <c>code</c> member of every problem document).</summary>
public static class ErrorCodes
{
    public const string Unauthenticated = "unauthenticated";
    public const string Forbidden = "forbidden";
    public const string NotFound = "not_found";
    public const string Expired = "expired";
    public const string InvalidRequest = "invalid_request";
    public const string MalformedRequest = "malformed_request";
    public const string Conflict = "conflict";
    public const string JobNotOpen = "job_not_open";
    public const string JobNotStartable = "job_not_startable";
    public const string TenantExists = "tenant_exists";
    public const string PayloadTooLarge = "payload_too_large";
    public const string ImageTooLarge = "image_too_large";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string NoImages = "no_images";
    public const string ImagesRejected = "images_rejected";
    public const string TooManyImages = "too_many_images";
    public const string RateLimited = "rate_limited";
    public const string QuotaImagesPerDay = "quota_images_per_day";
    public const string QuotaConcurrentJobs = "quota_concurrent_jobs";
    public const string ClusterBusy = "cluster_busy";
    public const string QuotaStorage = "quota_storage";
    public const string StorageUnavailable = "storage_unavailable";
    public const string EvaluationTooCostly = "evaluation_too_costly";
    public const string Unavailable = "unavailable";
    public const string Internal = "internal_error";

    /// <summary>The code for a status that no handler set one for (unknown routes, methods not allowed, …).</summary>
    public static string ForStatus(int status) => status switch
    {
        400 => MalformedRequest,
        401 => Unauthenticated,
        403 => Forbidden,
        404 => NotFound,
        405 => "method_not_allowed",
        409 => Conflict,
        413 => PayloadTooLarge,
        415 => UnsupportedMediaType,
        429 => RateLimited,
        503 => Unavailable,
        >= 500 => Internal,
        _ => "error",
    };
}

/// <summary>RFC 7807 problem documents with a stable <c>code</c>.</summary>
public static class Problems
{
    public static ProblemHttpResult Result(int status, string code, string title, string? detail = null, IDictionary<string, object?>? extensions = null)
    {
        var ext = new Dictionary<string, object?>(extensions ?? new Dictionary<string, object?>()) { ["code"] = code };
        return TypedResults.Problem(detail, statusCode: status, title: title, extensions: ext);
    }

    public static ProblemHttpResult NotFound(string detail) => Result(404, ErrorCodes.NotFound, "Not found", detail);

    public static ProblemHttpResult Invalid(string detail, string code = ErrorCodes.InvalidRequest) => Result(400, code, "Invalid request", detail);

    /// <summary>A 429 with <c>Retry-After</c> (whole seconds, at least 1).</summary>
    public static ProblemHttpResult TooMany(HttpContext context, TimeSpan retryAfter, string code, string detail, IDictionary<string, object?>? extensions = null)
    {
        SetRetryAfter(context, retryAfter);
        var ext = new Dictionary<string, object?>(extensions ?? new Dictionary<string, object?>()) { ["retryAfterSeconds"] = RetrySeconds(retryAfter) };
        return Result(429, code, "Too many requests", detail, ext);
    }

    public static int RetrySecondsOf(TimeSpan t) => RetrySeconds(t);

    public static void SetRetryAfter(HttpContext context, TimeSpan retryAfter) =>
        context.Response.Headers.RetryAfter = RetrySeconds(retryAfter).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static int RetrySeconds(TimeSpan t) => (int)Math.Clamp(Math.Ceiling(t.TotalSeconds), 1, int.MaxValue);

    /// <summary>The reason of a status that no handler explained (the framework's own refusals: routing, media types).</summary>
    private static string? DefaultDetail(int status) => status switch
    {
        400 => "The request could not be read.",
        401 => $"Send a valid API key in the {Auth.TaptAuth.Header} header.",
        404 => "There is no such resource or route.",
        405 => "This route does not take this HTTP method.",
        413 => "The request body is larger than this endpoint accepts.",
        415 => "This endpoint does not take this Content-Type: send JSON (application/json), or multipart/form-data for uploads.",
        _ => null,
    };

    /// <summary>Writes a problem document straight to the response (outside endpoint results: authentication, limits).</summary>
    public static async Task WriteAsync(HttpContext context, int status, string code, string title, string? detail = null, IDictionary<string, object?>? extensions = null)
    {
        if (context.Response.HasStarted) return;
        context.Response.StatusCode = status;
        var problem = new ProblemDetails { Status = status, Title = title, Detail = detail };
        problem.Extensions["code"] = code;
        if (extensions is not null)
            foreach (var (k, v) in extensions) problem.Extensions[k] = v;
        var service = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await service.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem });
    }

    /// <summary>Adds the code (from the status when none was set) and the trace id to every problem document.</summary>
    public static void Customize(ProblemDetailsContext context)
    {
        var p = context.ProblemDetails;
        var status = p.Status ?? context.HttpContext.Response.StatusCode;
        p.Extensions.TryAdd("code", ErrorCodes.ForStatus(status));
        p.Detail ??= DefaultDetail(status);
        p.Extensions.TryAdd("traceId", Activity.Current?.Id ?? context.HttpContext.TraceIdentifier);
        p.Instance = null;   // never echo the request path (it may name another tenant's things)
    }
}

/// <summary>
/// Turns exceptions into problem documents. Messages of the platform's own errors are safe to show (they name only
/// the caller's own things); anything unexpected becomes a bare 500.
/// </summary>
public sealed partial class GatewayExceptionHandler(ILogger<GatewayExceptionHandler> log) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && context.RequestAborted.IsCancellationRequested) return true;
        var (status, code, title, detail) = exception is InvalidDataException invalid
            ? ClassifyMultipart(invalid, context.RequestServices.GetRequiredService<IOptions<FormOptions>>().Value)
            : Classify(exception);
        if (status >= 500) log.LogError(exception, "Request {Method} {Path} failed", context.Request.Method, context.Request.Path);
        else log.LogDebug("Request {Method} {Path}: {Status} {Code}: {Message}", context.Request.Method, context.Request.Path, status, code, exception.Message);
        if (status == 503) Problems.SetRetryAfter(context, TimeSpan.FromSeconds(5));
        await Problems.WriteAsync(context, status, code, title, detail);
        return true;
    }

    internal static (int Status, string Code, string Title, string? Detail) Classify(Exception e) => e switch
    {
        TaptNotFoundException => (404, ErrorCodes.NotFound, "Not found", e.Message),
        TaptConflictException => (409, ErrorCodes.Conflict, "Conflict", e.Message),
        TaptRequestException => (400, ErrorCodes.InvalidRequest, "Invalid request", e.Message),
        TaptStorageQuotaException => (409, ErrorCodes.QuotaStorage, "Storage limit reached", e.Message),
        TaptStorageUnavailableException => (503, ErrorCodes.StorageUnavailable, "Storage unavailable", e.Message),
        BadHttpRequestException { StatusCode: 413 } => (413, ErrorCodes.PayloadTooLarge, "Payload too large", "The request body is larger than this endpoint accepts."),
        BadHttpRequestException { InnerException: JsonException j } => (400, ErrorCodes.MalformedRequest, "Malformed request", "The body is not valid JSON for this endpoint: " + JsonMessage(j)),
        BadHttpRequestException { StatusCode: 415 } => (415, ErrorCodes.UnsupportedMediaType, "Unsupported media type", "Send the body as JSON (Content-Type: application/json)."),
        BadHttpRequestException { StatusCode: 408 } => (408, "request_timeout", "Request timeout", "The request body arrived too slowly."),
        BadHttpRequestException b => (400, ErrorCodes.MalformedRequest, "Malformed request", BadRequestDetail(b)),
        JsonException j => (400, ErrorCodes.MalformedRequest, "Malformed request", "The body is not valid JSON for this endpoint: " + JsonMessage(j)),
        InvalidDataException => (400, ErrorCodes.MalformedRequest, "Malformed request", "The multipart body is malformed."),
        SiloUnavailableException or OrleansMessageRejectionException or GatewayTooBusyException or Orleans.Runtime.Messaging.ConnectionFailedException or TimeoutException
            => (503, ErrorCodes.Unavailable, "Service unavailable", "The cluster is not reachable right now; try again shortly."),
        _ => (500, ErrorCodes.Internal, "Internal error", "An unexpected error occurred."),
    };

    /// <summary>
    /// Why a multipart body could not be read, in our words (the form reader's messages are not shown): over its size
    /// or part-count limits (set from the gateway's own, see <c>AddTaptGateway</c>), or broken.
    /// </summary>
    internal static (int Status, string Code, string Title, string? Detail) ClassifyMultipart(InvalidDataException e, FormOptions limits) =>
        e.Message switch
        {
            var m when m.Contains("body length limit", StringComparison.OrdinalIgnoreCase) =>
                (413, ErrorCodes.PayloadTooLarge, "Payload too large", $"The upload is larger than {limits.MultipartBodyLengthLimit} bytes, the most one request may carry."),
            var m when m.Contains("value count limit", StringComparison.OrdinalIgnoreCase) =>
                (413, ErrorCodes.TooManyImages, "Too many images", $"One request carries at most {limits.ValueCountLimit} parts: send the rest in another request."),
            var m when m.Contains("headers", StringComparison.OrdinalIgnoreCase) =>
                (400, ErrorCodes.MalformedRequest, "Malformed request", "A part of the multipart body has too many or too long headers."),
            var m when m.Contains("length limit", StringComparison.OrdinalIgnoreCase) =>
                (400, ErrorCodes.MalformedRequest, "Malformed request", "A form field of the multipart body is too long."),
            _ => (400, ErrorCodes.MalformedRequest, "Malformed request", "The multipart body is malformed: a boundary, a part's headers or its end is missing or broken."),
        };

    /// <summary>Which parameter could not be read, by its name only (the framework's message also names types).</summary>
    private static string BadRequestDetail(BadHttpRequestException b) =>
        ParameterName().Match(b.Message) is { Success: true } m
            ? $"The parameter '{m.Groups["name"].Value}' is missing or not valid for this endpoint."
            : "The request could not be read: its body is missing, incomplete, or not what this endpoint takes.";

    [GeneratedRegex("""parameter "(?:[^"]* )?(?<name>[A-Za-z_][A-Za-z0-9_]*)" """, RegexOptions.CultureInvariant)]
    private static partial Regex ParameterName();

    /// <summary>Where the JSON went wrong, without echoing the input.</summary>
    private static string JsonMessage(JsonException j) =>
        j.Path is { Length: > 0 } path ? $"at {path} (line {j.LineNumber + 1})" : $"line {j.LineNumber + 1}";
}
