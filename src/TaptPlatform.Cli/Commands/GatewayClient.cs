using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Polly;

namespace TaptPlatform.Cli.Commands;

/// <summary>A failure the gateway reported (an RFC 7807 problem) or a transport error: printed as one line, exit code 1.</summary>
/// <summary>The gateway refused or could not be reached; <see cref="Code"/> and <see cref="Problem"/> are the problem document's, when it sent one.</summary>
public sealed class GatewayException(string message, string? code = null, JsonElement? problem = null) : Exception(message)
{
    public string? Code => code;
    public JsonElement? Problem => problem;
}

/// <summary>
/// A small HTTP client of the gateway's API for <c>tapt submit</c> and <c>tapt audit</c>. It knows only the JSON the
/// API speaks (the records below), not the platform's Orleans contracts, so the CLI stays independent of them.
/// </summary>
public sealed partial class GatewayClient : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    private readonly GatewayHttp _gateway;
    private readonly HttpClient _http;

    public GatewayClient(string server, string key, HttpMessageHandler? handler = null)
    {
        if (!Uri.TryCreate(server.EndsWith('/') ? server : server + "/", UriKind.Absolute, out var baseAddress) ||
            baseAddress.Scheme is not ("http" or "https"))
            throw new CliException($"--server must be an http(s) URL, got '{server}'");
        Server = baseAddress;
        Key = key;
        _gateway = new GatewayHttp(baseAddress, GatewayRetry.Interactive, handler is null ? null : () => handler);
        _http = _gateway.Client;
        _http.DefaultRequestHeaders.Add("X-Api-Key", key);
    }

    public Uri Server { get; }
    public string Key { get; }

    public Task<JobInfo> CreateJobAsync(string vocabulary, string configuration, string? name, int seed, CancellationToken ct) =>
        SendAsync<JobInfo>(() => new HttpRequestMessage(HttpMethod.Post, "api/jobs")
        {
            Content = JsonContent.Create(new { vocabulary, promptConfiguration = configuration, name, seed }, options: Json),
        }, ct);

    /// <summary>Uploads files as one multipart request (one file part per image); a batch refused whole comes back as a receipt of refusals.</summary>
    public Task<UploadReceiptInfo> UploadAsync(string jobId, IReadOnlyList<string> files, CancellationToken ct) =>
        UploadAsync(() =>
        {
            var content = new MultipartFormDataContent();
            foreach (var f in files)
            {
                var part = new ByteArrayContent(File.ReadAllBytes(f));
                part.Headers.ContentType = new MediaTypeHeaderValue(ContentType(f));
                content.Add(part, "images", Path.GetFileName(f));
            }
            return new HttpRequestMessage(HttpMethod.Post, $"api/jobs/{Uri.EscapeDataString(jobId)}/images") { Content = content };
        }, refused => new UploadReceiptInfo(jobId, [], [.. refused.GetProperty("rejected").EnumerateArray()],
            refused.TryGetProperty("totalImages", out var total) ? total.GetInt32() : 0), ct);

    public Task<JobInfo> StartAsync(string jobId, CancellationToken ct) =>
        SendAsync<JobInfo>(() => new HttpRequestMessage(HttpMethod.Post, $"api/jobs/{Uri.EscapeDataString(jobId)}/start"), ct);

    public Task<JobInfo> GetJobAsync(string jobId, CancellationToken ct) =>
        SendAsync<JobInfo>(() => new HttpRequestMessage(HttpMethod.Get, $"api/jobs/{Uri.EscapeDataString(jobId)}"), ct);

    public Task<EvaluationInfo> GetEvaluationAsync(string evaluationId, CancellationToken ct) =>
        SendAsync<EvaluationInfo>(() => new HttpRequestMessage(HttpMethod.Get, $"api/evaluations/{Uri.EscapeDataString(evaluationId)}"), ct);

    /// <summary>Stops a robustness evaluation (idempotent); the outcomes recorded so far stay.</summary>
    public Task<EvaluationInfo> CancelEvaluationAsync(string evaluationId, CancellationToken ct) =>
        SendAsync<EvaluationInfo>(() => new HttpRequestMessage(HttpMethod.Post, $"api/evaluations/{Uri.EscapeDataString(evaluationId)}/cancel"), ct);

    /// <summary>Creates a robustness evaluation from the API's create body (attack, ε list, budgets, protocol, seed).</summary>
    public Task<EvaluationInfo> CreateEvaluationAsync(object body, CancellationToken ct) =>
        SendAsync<EvaluationInfo>(() => new HttpRequestMessage(HttpMethod.Post, "api/evaluations") { Content = JsonContent.Create(body, options: Json) }, ct);

    /// <summary>
    /// Uploads labelled images to <paramref name="path"/> (an evaluation's or a training job's) as one multipart request (each
    /// part named by its label); a batch refused whole comes back as the problem, whose <c>rejected</c> lists the refusals.
    /// </summary>
    public Task<JsonElement> UploadLabelledImagesAsync(string path, IReadOnlyList<(string Label, string File)> images, CancellationToken ct) =>
        UploadAsync(() =>
        {
            var content = new MultipartFormDataContent();
            foreach (var (label, f) in images)
            {
                var part = new ByteArrayContent(File.ReadAllBytes(f));
                part.Headers.ContentType = new MediaTypeHeaderValue(ContentType(f));
                content.Add(part, label, Path.GetFileName(f));
            }
            return new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        }, refused => refused, ct);

    /// <summary>
    /// An upload: a batch the gateway refused whole (422 images_rejected: no image readable, or none named by a label) is
    /// turned into refused images by <paramref name="refusedWhole"/>, so the caller prints them and goes on with the next batch.
    /// </summary>
    private async Task<T> UploadAsync<T>(Func<HttpRequestMessage> request, Func<JsonElement, T> refusedWhole, CancellationToken ct)
    {
        try
        {
            return await SendAsync<T>(request, ct);
        }
        catch (GatewayException e) when (e.Code == "images_rejected" && e.Problem is { } problem && problem.TryGetProperty("rejected", out _))
        {
            return refusedWhole(problem);
        }
    }

    public Task<EvaluationInfo> StartEvaluationAsync(string evaluationId, CancellationToken ct) =>
        SendAsync<EvaluationInfo>(() => new HttpRequestMessage(HttpMethod.Post, $"api/evaluations/{Uri.EscapeDataString(evaluationId)}/start"), ct);

    /// <summary>The robustness report (partial while the evaluation runs).</summary>
    public Task<JsonElement> GetEvaluationReportAsync(string evaluationId, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Get, $"api/evaluations/{Uri.EscapeDataString(evaluationId)}/report"), ct);

    /// <summary>Every result of the job, in image order.</summary>
    public async Task<List<ResultInfo>> GetResultsAsync(string jobId, CancellationToken ct)
    {
        var all = new List<ResultInfo>();
        int? offset = 0;
        while (offset is { } o)
        {
            var page = await SendAsync<ResultPageInfo>(() => new HttpRequestMessage(HttpMethod.Get,
                $"api/jobs/{Uri.EscapeDataString(jobId)}/results?offset={o.ToString(CultureInfo.InvariantCulture)}&limit=1000"), ct);
            all.AddRange(page.Items);
            offset = page.NextOffset is { } next && next > o ? next : null;
        }
        return all;
    }

    public Task<AuditPageInfo> AuditAsync(string? jobId, string? reason, int limit, CancellationToken ct, string? verdict = null)
    {
        var q = new List<string> { "limit=" + limit.ToString(CultureInfo.InvariantCulture) };
        if (jobId is not null) q.Add("jobId=" + Uri.EscapeDataString(jobId));
        if (reason is not null) q.Add("reason=" + Uri.EscapeDataString(reason));
        if (verdict is not null) q.Add("verdict=" + Uri.EscapeDataString(verdict));
        return SendAsync<AuditPageInfo>(() => new HttpRequestMessage(HttpMethod.Get, "api/audit?" + string.Join('&', q)), ct);
    }

    /// <summary>Sends a request (retried as <see cref="GatewayHttp"/> says) and turns problems into <see cref="GatewayException"/>.</summary>
    private async Task<T> SendAsync<T>(Func<HttpRequestMessage> request, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request(), ct);
        }
        catch (HttpRequestException e)
        {
            throw new GatewayException($"cannot reach {Server}: {e.Message}");
        }
        catch (ExecutionRejectedException e)
        {
            throw new GatewayException($"{Server}: {e.Message}");   // a timeout, or the circuit open after repeated failures
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode) throw await ProblemAsync(response, ct);
            return await response.Content.ReadFromJsonAsync<T>(Json, ct) ?? throw new GatewayException("empty answer from the gateway");
        }
    }

    private static async Task<GatewayException> ProblemAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Json, ct);
            var detail = problem.TryGetProperty("detail", out var d) ? d.GetString() : problem.TryGetProperty("title", out var t) ? t.GetString() : null;
            var code = problem.TryGetProperty("code", out var c) ? c.GetString() : null;
            return new GatewayException(detail is null ? status : $"{status}: {detail}{(code is null ? "" : $" ({code})")}", code, problem.Clone());
        }
        catch (JsonException)
        {
            return new GatewayException(status);
        }
    }

    public static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"];

    private static string ContentType(string file) => Path.GetExtension(file).ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".jpg" or ".jpeg" => "image/jpeg",
        ".webp" => "image/webp",
        ".bmp" => "image/bmp",
        ".gif" => "image/gif",
        _ => "application/octet-stream",
    };

    public void Dispose() => _gateway.Dispose();
}

// ---- the API's JSON, as far as the CLI reads it ------------------------------------------------------------------

public sealed record JobCountsInfo(int Total, int Completed, int Succeeded, int Failed, int Flagged);

/// <summary>A robustness evaluation's state and progress (outcomes recorded of images × ε), as <c>GET /api/evaluations/{id}</c> answers.</summary>
public sealed record EvaluationInfo(string JobId, string? Name, string State, int Images, int OutcomesRecorded, int OutcomesTotal, string? Error, long CostPerImage);

public sealed record JobInfo(string JobId, string? Name, string State, JobCountsInfo Counts, string Vocabulary, string PromptConfiguration,
    string Model, double? ThroughputPerSecond, double? EtaSeconds, string? Waiting)
{
    public bool IsFinal => State is "completed" or "cancelled";
}

public sealed record RejectedInfo(string Name, string? Reason);

public sealed record UploadReceiptInfo(string JobId, List<JsonElement> Accepted, List<JsonElement> Rejected, int TotalImages);

public sealed record ResultInfo(int Index, string Name, string? Error, int Prediction, string? Label, float Confidence,
    int BaselinePrediction, string? BaselineLabel, bool Flagged, List<string>? Reasons);

public sealed record ResultPageInfo(List<ResultInfo> Items, int Offset, int TotalResults, int? NextOffset);

public sealed record AuditItemInfo(string JobId, string? JobName, ResultInfo Result, string ImageUrl, string RecordUrl, ReviewInfo? Review = null);

/// <summary>A flagged image's current verdict.</summary>
public sealed record ReviewInfo(string Verdict, int Revision, string ReviewedBy, DateTimeOffset ReviewedAt);

public sealed record AuditPageInfo(List<AuditItemInfo> Items, int JobsScanned, bool Truncated, Dictionary<string, int>? Verdicts = null);

/// <summary>The hub's <c>jobProgress</c> event.</summary>
public sealed record JobProgressInfo(string JobId, string State, int Total, int Completed, int Succeeded, int Failed, int Flagged,
    double? ThroughputPerSecond, double? EtaSeconds, string? Waiting)
{
    public bool IsFinal => State is "completed" or "cancelled";
}

/// <summary>The hub's answer to <c>Subscribe(jobId)</c> (the parts the CLI uses).</summary>
public sealed record JobSnapshotInfo(JobInfo Job);

/// <summary>Fixed-width text tables for the terminal.</summary>
public static class TextTable
{
    public static void Write(TextWriter w, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = new List<IReadOnlyList<string>> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => i < r.Count ? r[i].Length : 0)).ToArray();
        foreach (var (r, n) in all.Select((r, n) => (r, n)))
        {
            w.WriteLine(string.Join("  ", r.Select((c, i) => i == r.Count - 1 ? c : c.PadRight(widths[i]))).TrimEnd());
            if (n == 0) w.WriteLine(string.Join("  ", widths.Select(x => new string('-', x))));
        }
    }

    public static string Percent(float p) => (p * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";
}
