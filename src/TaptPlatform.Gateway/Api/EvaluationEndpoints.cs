using TaptPlatform.Gateway.Telemetry;
using TaptPlatform.Gateway.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Text;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Grains.Storage;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace TaptPlatform.Gateway.Api;

/// <summary>The body of <c>POST /api/evaluations</c>.</summary>
public sealed record CreateEvaluationRequest(
    string? Vocabulary, string? PromptConfiguration, string? Attack, double[]? Epsilons, double? Epsilon, int? Steps, double? StepSize,
    int? Restarts, string? Protocol, int? Seed, int? Eot, int? BatchSize, int? VocabularyVersion, string? Name, int? Queries = null);

/// <summary>
/// Robustness evaluations: create (pinned to a vocabulary version and a prompt configuration), upload labelled images
/// (multipart: one file part per image, the part's name is its label), start, cancel, status, report (JSON and as a file),
/// per-image outcomes, and the stored artifacts (clean originals, adversarial images, amplified perturbations, outcome records).
/// </summary>
public static class EvaluationEndpoints
{
    public static void MapEvaluationEndpoints(this RouteGroupBuilder api)
    {
        var e = api.MapGroup("/evaluations").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Evaluations");
        e.MapPost("/", Create).Trail(TrailKinds.EvaluationCreated).WithSummary("Creates a robustness evaluation (attack: pgd, cw, di, apgd-ce, apgd-t, fab-t, square, autoattack, autoattack-rand; ε list, steps, Square queries, protocol, EOT, seed); 422 evaluation_too_costly when even one image would cost more than the limit.");
        e.MapGet("/", List).WithSummary("The tenant's evaluations, newest first.");
        e.MapPost("/{jobId}/images", Upload).Trail(TrailKinds.EvaluationImagesUploaded).WithMetadata(new BodyLimitMetadata(BodyLimitKind.Upload)).DisableAntiforgery()
            .WithSummary("Adds labelled images (multipart/form-data; each file part's name is its label).");
        e.MapPost("/{jobId}/start", Start).Trail(TrailKinds.EvaluationStarted)
            .WithSummary("Seals the evaluation and runs it on the accelerator silos (counted like a job: 429 past the tenant's concurrent-jobs quota, the cluster's running-jobs limit or the daily image quota, charged images × ε; 422 evaluation_too_costly past the cost limit).");
        e.MapPost("/{jobId}/cancel", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).CancelAsync(c.User.TenantId()))).Trail(TrailKinds.EvaluationCancelled)
            .WithSummary("Stops the evaluation within an attack step and gives its running slot back; the outcomes recorded so far stay (the report is partial). Idempotent.");
        e.MapGet("/{jobId}", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).GetStatusAsync(c.User.TenantId())))
            .WithSummary("State and progress (outcomes recorded of images × ε).");
        e.MapGet("/{jobId}/report", async (string jobId, HttpContext c, IGrainFactory g) =>
            TypedResults.Text(await Grain(g, jobId).GetReportAsync(c.User.TenantId()), "application/json", Encoding.UTF8))
            .WithSummary("The robustness report (JSON; partial while running).");
        e.MapGet("/{jobId}/report/download", async (string jobId, HttpContext c, IGrainFactory g) =>
            TypedResults.File(Encoding.UTF8.GetBytes(await Grain(g, jobId).GetReportAsync(c.User.TenantId())), "application/json", $"robustness-report-{jobId}.json"))
            .WithSummary("The robustness report as a downloadable file.");
        e.MapGet("/{jobId}/outcomes", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).GetOutcomesAsync(c.User.TenantId())))
            .WithSummary("Every recorded per-image outcome.");
        e.MapGet("/{jobId}/artifacts", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).ListArtifactsAsync(c.User.TenantId())))
            .WithSummary("The evaluation's stored artifacts.");
        e.MapGet("/{jobId}/artifacts/{**path}", async (string jobId, string path, HttpContext c, IGrainFactory g) =>
        {
            var f = await Grain(g, jobId).GetArtifactAsync(c.User.TenantId(), path);
            return TypedResults.File(f.Content, f.ContentType);
        }).WithSummary("Downloads one artifact, e.g. adversarial/eps0/00003/apt.png.");
    }

    private static IEvaluationJobGrain Grain(IGrainFactory g, string? jobId) => Live.EvaluationLive.Evaluation(g, jobId);

    private static async Task<Results<Ok<EvaluationStatus>, ProblemHttpResult>> Start(string jobId, HttpContext c, IGrainFactory g,
        IOptionsMonitor<GatewayOptions> options, GatewayMetrics metrics)
    {
        var tenantId = c.User.TenantId();
        var grain = Grain(g, jobId);
        var status = await grain.GetStatusAsync(tenantId);
        if (status.State == JobState.Open && status.Cost > options.CurrentValue.MaxEvaluationCost)
            return TooCostly(status.Cost, options.CurrentValue.MaxEvaluationCost,
                $"this evaluation would cost {status.Cost} ({status.CostPerImage} per image × {status.Images} images), over the limit of {options.CurrentValue.MaxEvaluationCost} per evaluation");
        try
        {
            return TypedResults.Ok(await grain.StartAsync(tenantId, RunningSlots.LimitsFor(options.CurrentValue, tenantId)));
        }
        catch (TaptQuotaException e)
        {
            return RunningSlots.Refused(c, e, metrics);
        }
    }

    /// <summary>An evaluation over the operator's cost limit: 422 naming the cost, its factors and the limit.</summary>
    private static ProblemHttpResult TooCostly(long cost, long limit, string detail) =>
        Problems.Result(422, ErrorCodes.EvaluationTooCostly, "Evaluation too costly", detail,
            new Dictionary<string, object?> { ["cost"] = cost, ["maxCost"] = limit });

    private static async Task<Results<Created<EvaluationStatus>, ProblemHttpResult>> Create(CreateEvaluationRequest? body, HttpContext c, IGrainFactory g, TimeProvider clock,
        IOptionsMonitor<GatewayOptions> options)
    {
        if (body is null) return Problems.Invalid("send a JSON body {\"vocabulary\", \"promptConfiguration\", \"attack\", \"epsilons\"}");
        if (body.Vocabulary is null || !Identifiers.IsValidName(body.Vocabulary)) return Problems.Invalid("vocabulary: the name of one of your vocabularies is required");
        if (body.PromptConfiguration is null || !Identifiers.IsValidName(body.PromptConfiguration)) return Problems.Invalid("promptConfiguration: the name of one of your prompt configurations is required");
        var epsilons = body.Epsilons is { Length: > 0 } list ? list.ToImmutableArray() : [body.Epsilon ?? 1.0 / 255];
        var request = new EvaluationRequest(body.Vocabulary, body.PromptConfiguration, (body.Attack ?? "pgd").Trim().ToLowerInvariant() switch { "apgd" => "apgd-ce", "fab" => "fab-t", var a => a },
            epsilons, body.Steps ?? 10, body.StepSize, body.Restarts ?? 1, body.Protocol ?? "nonadaptive", body.Seed ?? 0, body.Eot ?? 1, body.BatchSize ?? 16,
            body.VocabularyVersion, body.Name, body.Queries ?? EvaluationRequest.DefaultQueries);
        request.Validate();
        var tenantId = c.User.TenantId();
        var tenant = g.GetGrain<ITenantGrain>(tenantId);
        var vocabulary = await tenant.GetVocabularyAsync(request.Vocabulary, request.VocabularyVersion);
        var configuration = await tenant.GetPromptConfigurationAsync(request.PromptConfiguration);
        var maxCost = options.CurrentValue.MaxEvaluationCost;
        if (EvaluationCost.Of(request, configuration, 1) > maxCost)
            return TooCostly(EvaluationCost.Of(request, configuration, 1), maxCost, EvaluationCost.Refusal(request, configuration, 1, maxCost) + ", even with a single image");
        var id = EvaluationDefinition.NewId();
        var status = await g.GetGrain<IEvaluationJobGrain>(id).CreateAsync(new EvaluationDefinition(tenantId, id, vocabulary, configuration, request, clock.GetUtcNow()));
        await g.GetGrain<IEvaluationIndexGrain>(tenantId).AddAsync(id);
        return TypedResults.Created($"/api/evaluations/{id}", status);
    }

    private static async Task<Ok<ImmutableArray<EvaluationStatus>>> List(HttpContext c, IGrainFactory g, int? limit)
    {
        var tenantId = c.User.TenantId();
        var ids = await g.GetGrain<IEvaluationIndexGrain>(tenantId).ListAsync();
        return TypedResults.Ok(await NewestFirst.StatusesAsync(ids, limit, id => g.GetGrain<IEvaluationJobGrain>(id).GetStatusAsync(tenantId)));
    }

    /// <summary>
    /// Streams the labelled parts (each at most <see cref="GatewayOptions.MaxImageBytes"/>; large ones, and every part
    /// once <see cref="GatewayOptions.UploadChunkBytes"/> are held, into staging blobs), checks the evaluation's cost for
    /// all of them, then hands them to the grain in chunks. Nothing is stored unless the whole upload fits the cost limit.
    /// </summary>
    private static async Task<Results<Ok<AddImagesReceipt>, ProblemHttpResult>> Upload(string jobId, HttpContext c, IGrainFactory g, IOptionsMonitor<GatewayOptions> options,
        ImageStaging staging, ILoggerFactory loggers)
    {
        var o = options.CurrentValue;
        var tenantId = c.User.TenantId();
        var grain = Grain(g, jobId);
        // Whose it is first: another tenant's evaluation is not found, whatever the body.
        var status = await grain.GetStatusAsync(tenantId);
        return await LabelledUploads.UploadAsync(c, staging, loggers.CreateLogger(typeof(EvaluationEndpoints)), tenantId, status.JobId, o, count =>
        {
            // Every offered part counts before any is stored: an upload that could take the evaluation over its budget is refused whole.
            var maxCost = o.MaxEvaluationCost;
            var offered = status.Images + count;
            if (status.CostPerImage > 0 && offered > maxCost / status.CostPerImage)
                return TooCostly(status.CostPerImage * offered, maxCost,
                    $"with these {count} images this evaluation would cost {status.CostPerImage * offered} ({status.CostPerImage} per image × {offered} images), over the limit of {maxCost} per evaluation");
            if (offered > IEvaluationJobGrain.MaxImages) throw new TaptRequestException($"an evaluation holds at most {IEvaluationJobGrain.MaxImages} images");
            return null;
        }, chunk => grain.AddImagesAsync(tenantId, chunk));
    }
}
