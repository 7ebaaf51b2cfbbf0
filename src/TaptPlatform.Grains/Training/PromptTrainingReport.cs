using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// The report of a prompt training job as JSON: its settings and split, the training curve (per epoch: loss, accuracy on the
/// clean and attacked halves of its batches, held-out clean and robust accuracy), the held-out accuracy of the model's default
/// artifact before and of the trained adversarial prompts after, and the artifact version it made.
/// </summary>
public static class PromptTrainingReport
{
    public const string Schema = "tapt-prompt-training-report/1";
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static JsonObject Build(PromptTrainingStatus status, PromptTrainingDefinition def)
    {
        var r = def.Request;
        JsonNode? Accuracy(PromptTrainingAccuracy? a) => a is null ? null : new JsonObject
        {
            ["clean"] = Finite(a.Clean),
            ["robust"] = Finite(a.Robust),
            ["images"] = a.Images,
        };
        var curve = new JsonArray([.. status.Curve.Select(e => (JsonNode)new JsonObject
        {
            ["prompts"] = e.Prompts,
            ["epoch"] = e.Epoch,
            ["learningRate"] = e.LearningRate,
            ["loss"] = Finite(e.Loss),
            ["trainCleanAccuracy"] = Finite(e.TrainCleanAccuracy),
            ["trainAdversarialAccuracy"] = e.TrainAdversarialAccuracy is { } adv ? Finite(adv) : null,
            ["validation"] = Accuracy(e.Validation),
            ["seconds"] = Math.Round(e.Seconds, 2),
            ["silo"] = e.Silo,
        })]);
        return new JsonObject
        {
            ["schema"] = Schema,
            ["jobId"] = status.JobId,
            ["name"] = status.Name,
            ["state"] = status.State.ToString().ToLowerInvariant(),
            ["error"] = status.Error,
            ["model"] = r.Model,
            ["vocabulary"] = new JsonObject { ["name"] = def.Vocabulary.Name, ["version"] = def.Vocabulary.Version },
            ["settings"] = new JsonObject
            {
                ["design"] = r.Design.Trim().ToUpperInvariant(),
                ["epochs"] = r.Epochs,
                ["epsilon"] = r.Epsilon,
                ["shotsPerClass"] = r.ShotsPerClass,
                ["validationFraction"] = r.ValidationFraction,
                ["seed"] = r.Seed,
                ["batchSize"] = r.BatchSize,
                ["learningRate"] = r.LearningRate,
                ["trainingAttack"] = "PGD-2 (step 1/255, random start) on half of each batch",
                ["validationAttack"] = "PGD-10 (step ε/4, random start) against the prompts evaluated",
            },
            ["images"] = new JsonObject { ["total"] = status.Images, ["train"] = status.TrainImages, ["validation"] = status.ValidationImages },
            ["curve"] = curve,
            ["before"] = Accuracy(status.Before),
            ["beforeSource"] = "the model's default prompt artifact (tapt-prompts), adversarial prompts",
            ["after"] = Accuracy(status.After),
            ["artifact"] = status.Artifact is { } a ? new JsonObject
            {
                ["name"] = a.Name,
                ["version"] = a.Version,
                ["sha256"] = a.Sha256,
                ["bytes"] = a.Bytes,
                ["design"] = a.Design,
            } : null,
            ["createdAt"] = status.CreatedAt,
            ["startedAt"] = status.StartedAt,
            ["finishedAt"] = status.FinishedAt,
            ["seconds"] = status.StartedAt is { } s && status.FinishedAt is { } f ? Math.Round((f - s).TotalSeconds, 1) : null,
        };
    }

    private static JsonNode? Finite(double v) => double.IsFinite(v) ? v : null;
}
