using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Gateway.Telemetry;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>Jobs: create, upload images (multipart, many per request), start, cancel, status, results, export.</summary>
public static class JobEndpoints
{
    public static void MapJobEndpoints(this RouteGroupBuilder api)
    {
        var jobs = api.MapGroup("/jobs").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Jobs");
        jobs.MapGet("/", List).WithSummary("The tenant's jobs, newest first.");
        jobs.MapPost("/", Create).Trail(TrailKinds.JobCreated).WithSummary("Creates a job pinned to a vocabulary version and a prompt configuration.");
        jobs.MapGet("/{jobId}", Get).WithSummary("A job's state, counts, throughput and ETA.");
        jobs.MapPost("/{jobId}/images", Upload).Trail(TrailKinds.ImagesUploaded).WithMetadata(new BodyLimitMetadata(BodyLimitKind.Upload)).DisableAntiforgery()
            .WithSummary("Adds images (multipart/form-data, one file part per image). Each accepted image is stored before the answer.");
        jobs.MapPost("/{jobId}/start", Start).Trail(TrailKinds.JobStarted).WithSummary("Seals the job and starts classifying its images (429 past the tenant's concurrent-jobs quota or the cluster's running-jobs limit; the job keeps its images).");
        jobs.MapPost("/{jobId}/cancel", Cancel).Trail(TrailKinds.JobCancelled).WithSummary("Stops the job; images without a result stay without one.");
        jobs.MapGet("/{jobId}/results", Results).WithSummary("Results in image order, paged (offset, limit ≤ 1000).");
        jobs.MapGet("/{jobId}/results/{index:int}", ResultDetail).WithSummary("The full record of one image's result (every probability, every step).");
        jobs.MapGet("/{jobId}/images/{index:int}", InputImage).WithSummary("The stored input image.");
        jobs.MapGet("/{jobId}/export", Export).Trail(TrailKinds.ResultsExported).WithSummary("Every result as CSV (format=csv, the default) or JSON (format=json).");
        jobs.MapGet("/{jobId}/artifacts", async (string jobId, HttpContext c, IGrainFactory g) =>
            TypedResults.Ok(await g.Job(jobId).ListArtifactsAsync(c.User.TenantId()))).WithSummary("The job's stored artifacts.");
    }

    private static async Task<Ok<ImmutableArray<JobView>>> List(HttpContext c, IGrainFactory g, TimeProvider clock, int? limit)
    {
        var tenantId = c.User.TenantId();
        var ids = await g.GetGrain<ITenantGrain>(tenantId).ListJobsAsync();
        var take = Math.Clamp(limit ?? 50, 1, 200);
        var statuses = await Task.WhenAll(ids.Reverse().Take(take).Select(async id =>
        {
            try
            {
                return await g.GetGrain<IJobGrain>(id).GetStatusAsync(tenantId);
            }
            catch (TaptNotFoundException)
            {
                return null;   // listed, never created
            }
        }));
        var now = clock.GetUtcNow();
        return TypedResults.Ok(statuses.OfType<JobStatus>().Select(s => JobView.From(s, now)).ToImmutableArray());
    }

    private static async Task<Results<Created<JobView>, ProblemHttpResult>> Create(CreateJobRequest? body, HttpContext c, IGrainFactory g, TimeProvider clock, GatewayMetrics metrics)
    {
        if (body is null) return Problems.Invalid("send a JSON body {\"vocabulary\", \"promptConfiguration\"}");
        if (body.Vocabulary is null || !Identifiers.IsValidName(body.Vocabulary)) return Problems.Invalid("vocabulary: the name of one of your vocabularies is required");
        if (body.PromptConfiguration is null || !Identifiers.IsValidName(body.PromptConfiguration))
            return Problems.Invalid("promptConfiguration: the name of one of your prompt configurations is required");
        var status = await g.GetGrain<ITenantGrain>(c.User.TenantId())
            .CreateJobAsync(new JobRequest(body.Vocabulary, body.PromptConfiguration, body.VocabularyVersion, body.Seed ?? 0, body.Name));
        metrics.JobCreated();
        return TypedResults.Created($"/api/jobs/{status.JobId}", JobView.From(status, clock.GetUtcNow()));
    }

    private static async Task<Ok<JobView>> Get(string jobId, HttpContext c, IGrainFactory g, TimeProvider clock) =>
        TypedResults.Ok(JobView.From(await g.Job(jobId).GetStatusAsync(c.User.TenantId()), clock.GetUtcNow()));

    private static async Task<Results<Ok<JobView>, ProblemHttpResult>> Start(string jobId, HttpContext c, IGrainFactory g, TimeProvider clock, IOptionsMonitor<GatewayOptions> options, GatewayMetrics metrics)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        var status = await job.GetStatusAsync(tenantId);
        switch (status.State)
        {
            case JobState.Running or JobState.Completed:
                return TypedResults.Ok(JobView.From(status, clock.GetUtcNow()));
            case JobState.Cancelled:
                return Problems.Result(409, ErrorCodes.JobNotStartable, "Job not startable", $"job '{jobId}' was cancelled");
        }
        if (status.Counts.Total == 0) return Problems.Result(409, ErrorCodes.JobNotStartable, "Job not startable", "add at least one image before starting the job");
        try
        {
            // The job grain takes its slots (the tenant's concurrent jobs, the cluster's running jobs) and gives them back when it ends.
            return TypedResults.Ok(JobView.From(await job.StartAsync(tenantId, RunningSlots.LimitsFor(options.CurrentValue, tenantId)), clock.GetUtcNow()));
        }
        catch (TaptQuotaException e)
        {
            return RunningSlots.Refused(c, e, metrics);
        }
    }


    private static async Task<Ok<JobView>> Cancel(string jobId, HttpContext c, IGrainFactory g, TimeProvider clock) =>
        TypedResults.Ok(JobView.From(await g.Job(jobId).CancelAsync(c.User.TenantId()), clock.GetUtcNow()));

    private static async Task<Results<Ok<ResultPageView>, ProblemHttpResult>> Results(string jobId, HttpContext c, IGrainFactory g, JobLabels labels, int? offset, int? limit)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        var status = await job.GetStatusAsync(tenantId);
        if (offset is < 0) return Problems.Invalid("offset must not be negative");
        var page = await job.GetResultsAsync(tenantId, offset ?? 0, Math.Clamp(limit ?? 100, 1, 1000));
        var names = await labels.ForAsync(tenantId, status);
        return TypedResults.Ok(new ResultPageView(page.Items.Select(r => ResultView.From(r, names)).ToImmutableArray(), page.Offset, page.TotalResults, page.NextOffset));
    }

    private static async Task<Ok<ImageResultDetail>> ResultDetail(string jobId, int index, HttpContext c, IGrainFactory g) =>
        TypedResults.Ok(await g.Job(jobId).GetResultDetailAsync(c.User.TenantId(), index));

    /// <summary>
    /// Streamed from the tenant's blob by the gateway, after the job grain said whose the job is and how many images it
    /// has: an image of up to 20 MiB never travels in a grain message nor sits whole in the gateway's memory.
    /// </summary>
    private static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> InputImage(string jobId, int index, HttpContext c, IGrainFactory g, IArtifactStore store)
    {
        var tenantId = c.User.TenantId();
        var status = await g.Job(jobId).GetStatusAsync(tenantId);
        if (index < 0 || index >= status.Counts.Total) throw new TaptNotFoundException($"job '{status.JobId}' has no image {index}");
        // The job accepted it, so a missing blob was deleted: by the tenant's retention (the result stays).
        if (await store.OpenReadAsync(tenantId, status.JobId, ArtifactKinds.Inputs, index, c.RequestAborted) is not var (content, contentType, length))
            return Problems.Result(410, ErrorCodes.Expired, "Gone",
                $"input image {index} is no longer stored: it expired under the tenant's retention (GET /api/retention); its result is kept");
        c.Response.Headers.CacheControl = "private, max-age=3600";
        c.Response.ContentLength = length;
        // The job grain stored it with the type of the format it identified.
        return TypedResults.Stream(content, contentType.StartsWith("image/", StringComparison.Ordinal) ? contentType : "application/octet-stream");
    }

    // ---- upload -------------------------------------------------------------------------------------------

    private static async Task<Results<Ok<UploadReceipt>, ProblemHttpResult>> Upload(string jobId, HttpContext c, IGrainFactory g, IOptionsMonitor<GatewayOptions> options,
        GatewayMetrics metrics, ImageStaging staging, ILoggerFactory loggers)
    {
        var o = options.CurrentValue;
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        var status = await job.GetStatusAsync(tenantId);
        if (status.State != JobState.Open)
            return Problems.Result(409, ErrorCodes.JobNotOpen, "Job not open", $"job '{jobId}' is {status.State.ToString().ToLowerInvariant()}: images can be added only before it starts");
        if (!MediaTypeHeaderValue.TryParse(c.Request.ContentType, out var mediaType) || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            return Problems.Result(415, ErrorCodes.UnsupportedMediaType, "Unsupported media type", "send the images as multipart/form-data, one file part per image");
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary) || boundary.Length > 200) return Problems.Invalid("the multipart boundary is missing or too long", ErrorCodes.MalformedRequest);

        var quota = g.GetGrain<ITenantQuotaGrain>(tenantId);
        var limits = o.LimitsFor(tenantId);
        var upload = new UploadState(tenantId, status.JobId, job, quota, limits.ImagesPerDay, staging);
        try
        {
            var reader = new MultipartReader(boundary, c.Request.Body) { HeadersLengthLimit = 16 * 1024, HeadersCountLimit = 16 };
            var files = 0;
            MultipartSection? section;
            while ((section = await reader.ReadNextSectionAsync(c.RequestAborted)) is not null)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.IsFileDisposition())
                {
                    await section.Body.DrainAsync(c.RequestAborted);   // plain form fields are ignored
                    continue;
                }
                if (++files > o.MaxImagesPerRequest)
                    return Problems.Result(413, ErrorCodes.TooManyImages, "Too many images",
                        $"one request carries at most {o.MaxImagesPerRequest} images: send the rest in another request", upload.Extensions());
                var name = UploadParts.FileName(disposition);
                if (await UploadParts.ReadAsync(staging, tenantId, status.JobId, section.Body, o.StagingThresholdBytes, o.MaxImageBytes, c.RequestAborted) is not { } part)
                    return Problems.Result(413, ErrorCodes.ImageTooLarge, "Image too large",
                        $"image '{Shorten(name)}' is larger than {o.MaxImageBytes} bytes", upload.Extensions());
                upload.Add(part.Staged is { } staged ? JobImage.Of(name, staged) : new JobImage(name, part.Content));
                if (upload.PendingCount >= o.UploadChunkImages || upload.PendingBytes >= o.UploadChunkBytes)
                    if (await upload.FlushAsync(c, metrics) is { } refused) return refused;
            }
            if (await upload.FlushAsync(c, metrics) is { } last) return last;
            if (files == 0) return Problems.Invalid("the request has no file parts: send each image as a file part of multipart/form-data", ErrorCodes.NoImages);
            var receipt = upload.Receipt(jobId);
            if (receipt.Accepted.IsEmpty)
                return Problems.Result(422, ErrorCodes.ImagesRejected, "No image accepted", "none of the images could be read as a supported image (PNG, JPEG, WebP, BMP, GIF)",
                    new Dictionary<string, object?> { ["rejected"] = receipt.Rejected, ["totalImages"] = receipt.TotalImages });
            return TypedResults.Ok(receipt);
        }
        finally
        {
            // The upload ends here: staged parts never handed to the job grain go now, not with some later sweep.
            await upload.DiscardPendingAsync(loggers.CreateLogger(typeof(JobEndpoints)));
        }
    }

    /// <summary>
    /// The images of one upload request: small parts buffered, large ones streamed into staging blobs; handed to the job
    /// grain in chunks (<see cref="GatewayOptions.UploadChunkImages"/> images or <see cref="GatewayOptions.UploadChunkBytes"/>
    /// bytes, staged ones counted at their length, since the grain reads them), each chunk reserved against the daily quota.
    /// </summary>
    private sealed class UploadState(string tenantId, string jobId, IJobGrain job, ITenantQuotaGrain quota, int imagesPerDay, ImageStaging staging)
    {
        private readonly List<JobImage> _pending = [];
        private readonly List<AcceptedImage> _accepted = [];
        private readonly List<RejectedImage> _rejected = [];
        private int _total;

        public int PendingCount => _pending.Count;
        public long PendingBytes { get; private set; }

        public void Add(JobImage image)
        {
            _pending.Add(image);
            PendingBytes += image.Staged?.Length ?? image.Content.Length;
        }

        /// <summary>Hands the pending images to the job grain; a problem result when the quota refuses them.</summary>
        public async Task<ProblemHttpResult?> FlushAsync(HttpContext c, GatewayMetrics metrics)
        {
            if (_pending.Count == 0) return null;
            var decision = await quota.ReserveImagesAsync(_pending.Count, imagesPerDay);
            if (!decision.Granted)
            {
                metrics.Limited("images_per_day");
                return Problems.TooMany(c, decision.RetryAfter, ErrorCodes.QuotaImagesPerDay, decision.Reason ?? "daily image quota used up", Extensions());
            }
            AddImagesReceipt receipt;
            try
            {
                receipt = await job.AddImagesAsync(tenantId, [.. _pending]);
            }
            catch
            {
                await quota.ReleaseImagesAsync(_pending.Count);
                throw;
            }
            // The job grain has taken (or refused) the staged images and deleted their blobs.
            _pending.Clear();
            PendingBytes = 0;
            if (receipt.Rejected.Length > 0) await quota.ReleaseImagesAsync(receipt.Rejected.Length);
            metrics.ImagesAccepted(receipt.AcceptedIndices.Length);
            metrics.ImagesRejected(receipt.Rejected.Length);
            // The receipt says per offered image, in order, what became of it.
            foreach (var part in receipt.Parts)
                if (part.Index is { } index) _accepted.Add(new AcceptedImage(index, part.Name));
            _rejected.AddRange(receipt.Rejected);
            _total = receipt.TotalImages;
            return null;
        }

        /// <summary>Deletes the staging blobs of images not handed over (the upload was refused or failed part-way).</summary>
        public async Task DiscardPendingAsync(ILogger log)
        {
            var pending = _pending.Select(i => i.Staged).ToList();
            _pending.Clear();
            await UploadParts.DiscardAsync(staging, tenantId, jobId, pending, log);
        }

        public UploadReceipt Receipt(string jobId) => new(jobId, [.. _accepted], [.. _rejected], _total);

        /// <summary>What a refusal part-way reports: the images stored before it.</summary>
        public Dictionary<string, object?> Extensions() => new()
        {
            ["accepted"] = _accepted.ToArray(),
            ["rejected"] = _rejected.ToArray(),
        };
    }

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "…";

    // ---- export -------------------------------------------------------------------------------------------

    private static async Task Export(string jobId, HttpContext c, IGrainFactory g, JobLabels labels, string? format)
    {
        var tenantId = c.User.TenantId();
        var job = g.Job(jobId);
        var status = await job.GetStatusAsync(tenantId);
        var names = await labels.ForAsync(tenantId, status);
        var json = string.Equals(format, "json", StringComparison.OrdinalIgnoreCase);
        if (!json && format is not null && !string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase))
            throw new TaptRequestException("format: use csv or json");
        c.Response.ContentType = json ? "application/json; charset=utf-8" : "text/csv; charset=utf-8";
        c.Response.Headers.ContentDisposition = $"attachment; filename=\"{status.JobId}.{(json ? "json" : "csv")}\"";
        var options = c.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        if (json)
        {
            // Utf8JsonWriter flushes synchronously: write into a buffer and copy it to the response asynchronously.
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(64 * 1024);
            await using var w = new Utf8JsonWriter(buffer);
            w.WriteStartObject();
            w.WritePropertyName("job");
            JsonSerializer.Serialize(w, JobView.From(status, DateTimeOffset.UtcNow), options);
            w.WriteStartArray("results");
            await foreach (var r in AllResults(job, tenantId, c.RequestAborted))
            {
                JsonSerializer.Serialize(w, ResultView.From(r, names), options);
                if (buffer.WrittenCount > 64 * 1024) await Drain();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            await Drain();
            return;

            async Task Drain()
            {
                w.Flush();
                await c.Response.Body.WriteAsync(buffer.WrittenMemory, c.RequestAborted);
                buffer.ResetWrittenCount();
            }
        }
        await using var writer = new StreamWriter(c.Response.Body, new UTF8Encoding(false), 64 * 1024);
        await writer.WriteLineAsync("index,name,label,confidence,baseline_label,apt_label,flagged,reasons,error,completed_at");
        await foreach (var r in AllResults(job, tenantId, c.RequestAborted))
        {
            var v = ResultView.From(r, names);
            await writer.WriteLineAsync(string.Join(',',
                v.Index.ToString(CultureInfo.InvariantCulture), Csv(v.Name), Csv(v.Label), v.Error is null ? v.Confidence.ToString("0.######", CultureInfo.InvariantCulture) : "",
                Csv(v.BaselineLabel ?? (v.BaselinePrediction >= 0 ? "#" + v.BaselinePrediction.ToString(CultureInfo.InvariantCulture) : null)),
                Csv(v.AptLabel ?? (v.AptPrediction >= 0 ? "#" + v.AptPrediction.ToString(CultureInfo.InvariantCulture) : null)),
                v.Flagged ? "true" : "false", Csv(string.Join(' ', v.Reasons)), Csv(v.Error), v.CompletedAt.ToString("O", CultureInfo.InvariantCulture)));
        }
        await writer.FlushAsync(c.RequestAborted);
    }

    private static async IAsyncEnumerable<ImageResult> AllResults(IJobGrain job, string tenantId, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        int? offset = 0;
        while (offset is { } o && !ct.IsCancellationRequested)
        {
            var page = await job.GetResultsAsync(tenantId, o, 1000);
            foreach (var r in page.Items) yield return r;
            offset = page.NextOffset;
        }
    }

    /// <summary>A CSV field: quoted when needed, and never read as a formula by a spreadsheet.</summary>
    internal static string Csv(string? s)
    {
        if (string.IsNullOrEmpty(s)) return "";
        if (s[0] is '=' or '+' or '-' or '@' or '\t' or '\r') s = "'" + s;
        return s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
    }
}
