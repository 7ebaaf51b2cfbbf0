using System.Collections.Immutable;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Gateway.Telemetry;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>The body of <c>POST /api/prompt-trainings</c> (defaults: design VLI, 2 epochs, ε 1/255, 16 shots per class, 20% held out).</summary>
public sealed record CreatePromptTrainingRequest(
    string? Vocabulary, string? Model, string? ArtifactName, string? Design, int? Epochs, double? Epsilon, int? ShotsPerClass, double? ValidationFraction,
    int? Seed, int? BatchSize, int? VocabularyVersion, string? Name, double? LearningRate = null);

/// <summary>The body of <c>POST /api/prompt-trainings/{jobId}/prompt-configuration</c>: the configuration's name and test-time settings (null: the artifact's).</summary>
public sealed record TrainedConfigurationRequest(string? Name, int? Views, int? Steps, double? LearningRate);

/// <summary>
/// Prompt training jobs: create (against one of the tenant's vocabularies and a model), upload labelled images (multipart:
/// one file part per image, the part's name is its label, as evaluations take them), start, cancel, status with the
/// training curve, the report, and a prompt configuration version using the finished job's artifact.
/// </summary>
public static class PromptTrainingEndpoints
{
    public static void MapPromptTrainingEndpoints(this RouteGroupBuilder api)
    {
        var t = api.MapGroup("/prompt-trainings").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Prompt training");
        t.MapPost("/", Create).Trail(TrailKinds.TrainingCreated)
            .WithSummary("Creates a prompt training job (vocabulary, model, artifactName, design V|VLI|VLJ, epochs 1-50, epsilon (0, 16/255], shotsPerClass, validationFraction 0.05-0.5, seed, batchSize, learningRate (0, 1]).");
        t.MapGet("/", List).WithSummary("The tenant's prompt training jobs, newest first.");
        t.MapPost("/{jobId}/images", Upload).Trail(TrailKinds.TrainingImagesUploaded).WithMetadata(new BodyLimitMetadata(BodyLimitKind.Upload)).DisableAntiforgery()
            .WithSummary("Adds labelled images (multipart/form-data; each file part's name is its label).");
        t.MapPost("/{jobId}/start", Start).Trail(TrailKinds.TrainingStarted)
            .WithSummary("Splits the images and trains on an accelerator silo (429 past the concurrent-jobs quota, the cluster's running-jobs limit or the daily images, charged training images × epochs × 2).");
        t.MapPost("/{jobId}/cancel", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).CancelAsync(c.User.TenantId())))
            .Trail(TrailKinds.TrainingCancelled).WithSummary("Stops the training within a step; no artifact is made. Idempotent.");
        t.MapGet("/{jobId}", async (string jobId, HttpContext c, IGrainFactory g) => TypedResults.Ok(await Grain(g, jobId).GetStatusAsync(c.User.TenantId())))
            .WithSummary("State, epochs done and the training curve; when completed, the artifact version.");
        t.MapGet("/{jobId}/report", async (string jobId, HttpContext c, IGrainFactory g) =>
            TypedResults.Text(await Grain(g, jobId).GetReportAsync(c.User.TenantId()), "application/json", Encoding.UTF8))
            .WithSummary("The training report (JSON): curve, held-out clean/robust accuracy before (the model's default artifact) and after, the artifact.");
        t.MapPost("/{jobId}/prompt-configuration", Configure).Trail(TrailKinds.TrainingConfigured)
            .WithSummary("Adds a prompt configuration version (name: the body's, default the artifact's) that uses the finished job's artifact.");
    }

    private static IPromptTrainingJobGrain Grain(IGrainFactory g, string? jobId) =>
        Identifiers.IsValidJobId(jobId) ? g.GetGrain<IPromptTrainingJobGrain>(jobId!) : throw new TaptNotFoundException("training job not found");

    private static async Task<Results<Created<PromptTrainingStatus>, ProblemHttpResult>> Create(CreatePromptTrainingRequest? body, HttpContext c, IGrainFactory g, TimeProvider clock)
    {
        if (body is null) return Problems.Invalid("send a JSON body {\"vocabulary\", \"model\", \"artifactName\", \"epochs\", \"epsilon\", ...}");
        if (body.Vocabulary is null) return Problems.Invalid("vocabulary: the name of one of your vocabularies is required");
        if (body.Model is null) return Problems.Invalid("model: the name of a model in the cluster's catalog is required");
        if (body.ArtifactName is null) return Problems.Invalid("artifactName: the name the trained prompt artifact is stored under is required");
        var request = new PromptTrainingRequest(body.Vocabulary, body.Model, body.ArtifactName, body.Design ?? "VLI", body.Epochs ?? 2, body.Epsilon ?? 1.0 / 255,
            body.ShotsPerClass ?? 16, body.ValidationFraction ?? 0.2, body.Seed ?? 1, body.BatchSize ?? 32, body.VocabularyVersion, body.Name,
            body.LearningRate ?? PromptTrainingRequest.DefaultLearningRate);
        request.Validate();
        var tenantId = c.User.TenantId();
        var vocabulary = await g.GetGrain<ITenantGrain>(tenantId).GetVocabularyAsync(request.Vocabulary, request.VocabularyVersion);
        // The model must be in the catalog with its default artifact: the baseline, the prompts' layout and the test-time settings come from it.
        var operators = await g.GetGrain<IPromptArtifactCheckGrain>(request.Model).ListOperatorArtifactsAsync();
        if (!operators.Any(a => a.Name == "tapt-prompts"))
            return Problems.Result(422, ErrorCodes.InvalidRequest, "Model without default artifact", $"model '{request.Model}' has no default prompt artifact (tapt-prompts) to train against");
        var id = PromptTrainingDefinition.NewId();
        var status = await g.GetGrain<IPromptTrainingJobGrain>(id).CreateAsync(new PromptTrainingDefinition(tenantId, id, vocabulary, request, clock.GetUtcNow()));
        await g.GetGrain<IPromptTrainingIndexGrain>(tenantId).AddAsync(id);
        return TypedResults.Created($"/api/prompt-trainings/{id}", status);
    }

    private static async Task<Ok<ImmutableArray<PromptTrainingStatus>>> List(HttpContext c, IGrainFactory g, int? limit)
    {
        var tenantId = c.User.TenantId();
        var ids = await g.GetGrain<IPromptTrainingIndexGrain>(tenantId).ListAsync();
        return TypedResults.Ok(await NewestFirst.StatusesAsync(ids, limit, id => g.GetGrain<IPromptTrainingJobGrain>(id).GetStatusAsync(tenantId)));
    }

    private static async Task<Results<Ok<AddImagesReceipt>, ProblemHttpResult>> Upload(string jobId, HttpContext c, IGrainFactory g, IOptionsMonitor<GatewayOptions> options,
        ImageStaging staging, ILoggerFactory loggers)
    {
        var tenantId = c.User.TenantId();
        var grain = Grain(g, jobId);
        // Whose it is first: another tenant's job is not found, whatever the body.
        var status = await grain.GetStatusAsync(tenantId);
        return await LabelledUploads.UploadAsync(c, staging, loggers.CreateLogger(typeof(PromptTrainingEndpoints)), tenantId, status.JobId, options.CurrentValue,
            count => status.Images + count > IPromptTrainingJobGrain.MaxImages
                ? Problems.Result(413, ErrorCodes.TooManyImages, "Too many images", $"a training job holds at most {IPromptTrainingJobGrain.MaxImages} images ({status.Images} held)")
                : null,
            chunk => grain.AddImagesAsync(tenantId, chunk));
    }

    private static async Task<Results<Ok<PromptTrainingStatus>, ProblemHttpResult>> Start(string jobId, HttpContext c, IGrainFactory g,
        IOptionsMonitor<GatewayOptions> options, GatewayMetrics metrics)
    {
        var tenantId = c.User.TenantId();
        try
        {
            return TypedResults.Ok(await Grain(g, jobId).StartAsync(tenantId, RunningSlots.LimitsFor(options.CurrentValue, tenantId)));
        }
        catch (TaptQuotaException e)
        {
            return RunningSlots.Refused(c, e, metrics);
        }
    }

    private static async Task<Results<Created<PromptConfiguration>, Ok<PromptConfiguration>, ProblemHttpResult>> Configure(string jobId, TrainedConfigurationRequest? body,
        HttpContext c, IGrainFactory g)
    {
        var tenantId = c.User.TenantId();
        var status = await Grain(g, jobId).GetStatusAsync(tenantId);
        if (status.State != JobState.Completed || status.Artifact is not { } artifact)
            return Problems.Result(409, ErrorCodes.Conflict, "Training not finished", $"training job '{status.JobId}' is {status.State.ToString().ToLowerInvariant()}: only a completed one has an artifact to use");
        var name = body?.Name ?? artifact.Name;
        if (!Identifiers.IsValidName(name)) return Problems.Invalid("name: use 1-64 letters, digits, '.', '_' and '-'");
        var tenant = g.GetGrain<ITenantGrain>(tenantId);
        // A new version of an existing configuration keeps its other settings (flagging, test-time settings unless given).
        var existing = (await tenant.ListPromptConfigurationsAsync()).FirstOrDefault(x => x.Name == name);
        var configuration = (existing ?? new PromptConfiguration(name, artifact.Model)) with
        {
            Model = artifact.Model,
            PromptArtifact = artifact.Name,
            PromptArtifactVersion = artifact.Version,
            PromptArtifactSha256 = null,
            Design = artifact.Design,
            Views = body?.Views ?? existing?.Views,
            Steps = body?.Steps ?? existing?.Steps,
            LearningRate = body?.LearningRate ?? existing?.LearningRate,
            Version = 0,
        };
        var stored = await tenant.PutPromptConfigurationAsync(configuration);
        if (existing is not null && stored.Version == existing.Version) return TypedResults.Ok(stored);
        return TypedResults.Created($"/api/prompt-configurations/{stored.Name}/versions/{stored.Version}", stored);
    }
}
