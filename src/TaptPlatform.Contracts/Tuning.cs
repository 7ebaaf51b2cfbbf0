using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>The test-time settings of one tuning request, resolved from a prompt configuration.</summary>
[GenerateSerializer, Immutable]
public sealed record TuningSettings(
    [property: Id(0)] string? PromptArtifact,
    [property: Id(1)] string? Design,
    [property: Id(2)] int? Views,
    [property: Id(3)] int? Steps,
    [property: Id(4)] double? LearningRate,
    [property: Id(5)] int? PromptArtifactVersion = null,
    [property: Id(6)] string? PromptArtifactSha256 = null)
{
    public static TuningSettings From(PromptConfiguration c) =>
        new(c.PromptArtifact, c.Design, c.Views, c.Steps, c.LearningRate, c.PromptArtifactVersion, c.PromptArtifactSha256);

    /// <summary>The tenant's own artifact these settings use (with the request's tenant), or null for an operator's.</summary>
    public TenantArtifactReference? TenantArtifact(string tenantId) => PromptArtifactVersion is not int v ? null
        : PromptArtifact is { } name && PromptArtifactSha256 is { } sha ? new TenantArtifactReference(tenantId, name, v, sha)
        : throw new TuningFailedException($"prompt artifact '{PromptArtifact}' v{v} has no recorded checksum: store the prompt configuration again");
}

/// <summary>
/// One image for a model grain: the encoded bytes (the job grain reads them from its own tenant's blobs), or, for a
/// large image, none and <see cref="ImageStored"/>: the model grain reads the job's stored input blob itself, so the
/// image never travels in a grain message; the vocabulary by reference (the model grain obtains its texts once per
/// reference), the settings and the seed of the random views. Never stored: its shape may change between versions.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TuningRequest(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] int ImageIndex,
    [property: Id(3)] byte[] Image,
    [property: Id(9)] VocabularyReference Vocabulary,
    [property: Id(6)] TuningSettings Settings,
    [property: Id(7)] int Seed,
    [property: Id(8)] bool ReportSteps = true,
    [property: Id(10)] bool ImageStored = false);

/// <summary>One test-time step of one image: the losses, the selected views and the top labels after the step.</summary>
[GenerateSerializer, Immutable]
public sealed record StepMetrics(
    [property: Id(0)] int Step,
    [property: Id(1)] double EntropyLoss,
    [property: Id(2)] double AlignmentAdversarial,
    [property: Id(3)] double AlignmentClean,
    [property: Id(4)] double TotalLoss,
    [property: Id(5)] ImmutableArray<int> SelectedViews,
    [property: Id(6)] ImmutableArray<LabelProbability> TopK);

/// <summary>How far an image's block statistics sit from the references (before tuning).</summary>
[GenerateSerializer, Immutable]
public sealed record StatisticsDistanceInfo(
    [property: Id(0)] double ToAdversarialReference,
    [property: Id(1)] double ToCleanReference,
    [property: Id(2)] double? ToAttackedImages,
    [property: Id(3)] bool CloserToAttacked);

/// <summary>
/// What became of one image handed to the engine: <see cref="Tuned"/>, <see cref="Rejected"/> (the engine could not
/// decode it), or <see cref="Failed"/> (the job could not get it classified: its input was missing, or the engine
/// failed permanently). A job records exactly one per image.
/// </summary>
[GenerateSerializer, Immutable]
public abstract record TuningReply([property: Id(0)] int ImageIndex)
{
    [GenerateSerializer, Immutable]
    public sealed record Tuned([property: Id(0)] TuningOutcome Outcome) : TuningReply(Outcome.ImageIndex);

    [GenerateSerializer, Immutable]
    public sealed record Rejected : TuningReply
    {
        public Rejected(int imageIndex, string reason) : base(imageIndex) => Reason = reason;

        [Id(0)] public string Reason { get; init; }
    }

    [GenerateSerializer, Immutable]
    public sealed record Failed : TuningReply
    {
        public Failed(int imageIndex, string reason) : base(imageIndex) => Reason = reason;

        [Id(0)] public string Reason { get; init; }
    }

    /// <summary>The failure of an image whose stored input blob is gone.</summary>
    public const string MissingInput = "the stored input image is missing";

    /// <summary>Why the image has no prediction (null when it was tuned).</summary>
    public string? Error => this switch
    {
        Tuned => null,
        Rejected r => "image rejected: " + r.Reason,
        Failed f => f.Reason,
        _ => "no result",
    };
}

/// <summary>
/// What the engine computed for one tuned image: the model and artifact it used, plain CLIP, APT and TAPT
/// predictions with their probabilities, every step, and the statistics distances.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TuningOutcome(
    [property: Id(0)] int ImageIndex,
    [property: Id(1)] string Model,
    [property: Id(2)] string ModelChecksum,
    [property: Id(3)] string PromptArtifact,
    [property: Id(4)] string Design,
    [property: Id(5)] int Views,
    [property: Id(6)] int Steps,
    [property: Id(7)] double LearningRate,
    [property: Id(8)] int BaselinePrediction,
    [property: Id(9)] ImmutableArray<float> BaselineProbabilities,
    [property: Id(10)] int AptPrediction,
    [property: Id(11)] ImmutableArray<float> AptProbabilities,
    [property: Id(12)] int Prediction,
    [property: Id(13)] ImmutableArray<float> Probabilities,
    [property: Id(14)] ImmutableArray<StepMetrics> StepMetrics,
    [property: Id(15)] StatisticsDistanceInfo? Distances,
    [property: Id(16)] double Seconds,
    [property: Id(17)] int BatchSize,
    // Id 18 (the rejection of an image that was not tuned) is retired: that is a TuningReply.Rejected now.
    [property: Id(19)] ImmutableDictionary<string, ImmutableArray<float>>? TunedPrompts = null,
    // The number format the step ran in (the engine's Tapt:Engine:Precision with "auto" resolved): fp32, bf16-scoring or bf16.
    [property: Id(20)] string Precision = "fp32")
{
    public float Confidence => Probabilities.IsDefaultOrEmpty ? 0f : Probabilities[Prediction];
}

/// <summary>Where a model grain runs and the state of that silo's tuning engine.</summary>
[GenerateSerializer, Immutable]
public sealed record ModelHostInfo(
    [property: Id(0)] string Model,
    [property: Id(1)] string Silo,
    [property: Id(2)] string Accelerator,
    [property: Id(3)] string Device,
    [property: Id(4)] int TuningThreads,
    [property: Id(5)] int QueueCapacity,
    [property: Id(6)] int MaxBatchSize,
    [property: Id(7)] long BatchesRun,
    [property: Id(8)] long ImagesRun,
    [property: Id(9)] int LargestBatch,
    // The model is loaded on that silo now (a registered model is fetched and loaded on first use).
    [property: Id(10)] bool Loaded = false);
