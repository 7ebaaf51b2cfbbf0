using System.Net.Http.Json;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>The tenant's prompt training jobs (<c>/api/prompt-trainings</c>).</summary>
public sealed partial class GatewayClient
{
    /// <summary>Creates a prompt training job from the API's create body (null settings take the gateway's defaults).</summary>
    public Task<TrainingInfo> CreateTrainingAsync(object body, CancellationToken ct) =>
        SendAsync<TrainingInfo>(() => new HttpRequestMessage(HttpMethod.Post, "api/prompt-trainings") { Content = JsonContent.Create(body, options: Json) }, ct);

    public Task<TrainingInfo> GetTrainingAsync(string jobId, CancellationToken ct) =>
        SendAsync<TrainingInfo>(() => new HttpRequestMessage(HttpMethod.Get, TrainingPath(jobId)), ct);

    public Task<TrainingInfo> StartTrainingAsync(string jobId, CancellationToken ct) =>
        SendAsync<TrainingInfo>(() => new HttpRequestMessage(HttpMethod.Post, TrainingPath(jobId, "/start")), ct);

    /// <summary>Stops the training within a step (idempotent); no artifact is made.</summary>
    public Task<TrainingInfo> CancelTrainingAsync(string jobId, CancellationToken ct) =>
        SendAsync<TrainingInfo>(() => new HttpRequestMessage(HttpMethod.Post, TrainingPath(jobId, "/cancel")), ct);

    /// <summary>Adds a prompt configuration version using the finished job's artifact (name null: the artifact's).</summary>
    public Task<JsonElement> ConfigureFromTrainingAsync(string jobId, string? name, CancellationToken ct) =>
        SendAsync<JsonElement>(() => new HttpRequestMessage(HttpMethod.Post, TrainingPath(jobId, "/prompt-configuration"))
        {
            Content = JsonContent.Create(new { name }, options: Json),
        }, ct);

    public static string TrainingPath(string jobId, string rest = "") => $"api/prompt-trainings/{Uri.EscapeDataString(jobId)}{rest}";
}

/// <summary>A prompt training job as <c>GET /api/prompt-trainings/{id}</c> answers (the parts the CLI prints).</summary>
public sealed record TrainingInfo(string JobId, string? Name, string State, int Images, int EpochsDone, int EpochsTotal, List<TrainingEpochInfo> Curve,
    TrainingAccuracyInfo? Before, TrainingAccuracyInfo? After, TrainedArtifactInfo? Artifact, int TrainImages, int ValidationImages, string? Error, string? Waiting)
{
    public bool IsFinal => State is "completed" or "cancelled";
}

/// <summary>One epoch of the curve: which prompts, the loss and accuracy on its batches, the held-out accuracy after it.</summary>
public sealed record TrainingEpochInfo(string Prompts, int Epoch, double LearningRate, double Loss, double TrainCleanAccuracy, double? TrainAdversarialAccuracy,
    TrainingAccuracyInfo Validation, double Seconds, string Silo);

/// <summary>Held-out clean and robust (PGD-10) accuracy on so many images.</summary>
public sealed record TrainingAccuracyInfo(double Clean, double Robust, int Images);

/// <summary>The artifact version a completed job made.</summary>
public sealed record TrainedArtifactInfo(string Name, int Version, string Design);
