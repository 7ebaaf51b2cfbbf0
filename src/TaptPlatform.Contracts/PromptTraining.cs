using System.Collections.Immutable;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>
/// What a tenant asks of a prompt training job: the vocabulary its labelled images use (latest version unless pinned), the
/// model, the prompt design (V, VLI or VLJ), epochs (per prompt set: adversarial, then clean), ε of the adversarial half of
/// each batch (a fraction of the pixel range), training images per class, the share of each class held out for
/// validation, seed, batch size, SGD's peak learning rate, and the name the resulting prompt artifact is stored under (a new version of it).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingRequest(
    [property: Id(0)] string Vocabulary,
    [property: Id(1)] string Model,
    [property: Id(2)] string ArtifactName,
    [property: Id(3)] string Design = "VLI",
    [property: Id(4)] int Epochs = 2,
    [property: Id(5)] double Epsilon = 1.0 / 255,
    [property: Id(6)] int ShotsPerClass = 16,
    [property: Id(7)] double ValidationFraction = 0.2,
    [property: Id(8)] int Seed = 1,
    [property: Id(9)] int BatchSize = 32,
    [property: Id(10)] int? VocabularyVersion = null,
    [property: Id(11)] string? Name = null,
    [property: Id(12)] double LearningRate = PromptTrainingRequest.DefaultLearningRate)
{
    /// <summary>APT's peak learning rate as <c>tapt prompts train</c> defaults it (their config files; the paper says 0.035).</summary>
    public const double DefaultLearningRate = 0.0035;
    public const int MaxEpochs = 50;
    public const double MaxEpsilon = 16.0 / 255;
    public const int MaxShotsPerClass = 1000;
    public const double MinValidationFraction = 0.05;
    public const double MaxValidationFraction = 0.5;

    /// <summary>Throws <see cref="TaptRequestException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (!Identifiers.IsValidName(Vocabulary)) throw new TaptRequestException("vocabulary: the name of one of your vocabularies is required");
        if (!Identifiers.IsValidName(Model)) throw new TaptRequestException("model: the name of a model in the cluster's catalog is required");
        if (!Identifiers.IsValidName(ArtifactName)) throw new TaptRequestException("artifactName: the prompt artifact's name (1-64 letters, digits, '.', '_' and '-') is required");
        if (Design.Trim().ToUpperInvariant() is not ("V" or "VLI" or "VLJ")) throw new TaptRequestException($"design must be V, VLI or VLJ (got '{Design}')");
        if (Epochs is < 1 or > MaxEpochs) throw new TaptRequestException($"epochs must be in 1..{MaxEpochs} (got {Epochs})");
        if (double.IsNaN(Epsilon) || Epsilon <= 0 || Epsilon > MaxEpsilon)
            throw new TaptRequestException($"epsilon must be in (0, {MaxEpsilon:G4}] (16/255; a fraction of the pixel range: 1/255 = 0.00392), got {Epsilon}");
        if (ShotsPerClass is < 1 or > MaxShotsPerClass) throw new TaptRequestException($"shotsPerClass must be in 1..{MaxShotsPerClass} (got {ShotsPerClass})");
        if (double.IsNaN(ValidationFraction) || ValidationFraction < MinValidationFraction || ValidationFraction > MaxValidationFraction)
            throw new TaptRequestException($"validationFraction must be in [{MinValidationFraction}, {MaxValidationFraction}] (got {ValidationFraction})");
        if (double.IsNaN(LearningRate) || LearningRate <= 0 || LearningRate > 1) throw new TaptRequestException($"learningRate must be in (0, 1] (got {LearningRate})");
        if (BatchSize is < 2 or > 256) throw new TaptRequestException($"batchSize must be in 2..256 (got {BatchSize})");
        if (VocabularyVersion is < 1) throw new TaptRequestException("vocabularyVersion must be at least 1");
        if (Name is { Length: > 200 }) throw new TaptRequestException("name: at most 200 characters");
    }
}

/// <summary>A prompt training job pinned at creation to a copy of the vocabulary version.</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingDefinition(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] VocabularyVersion Vocabulary,
    [property: Id(3)] PromptTrainingRequest Request,
    [property: Id(4)] DateTimeOffset CreatedAt)
{
    /// <summary>Training job ids start with this prefix (a readable shape; nothing routes on it).</summary>
    public const string IdPrefix = "train-";

    public static string NewId() => IdPrefix + Guid.NewGuid().ToString("N");
}

/// <summary>Clean and robust accuracy of one prompt set on the held-out images (robust: PGD-10 at the job's ε).</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingAccuracy(
    [property: Id(0)] double Clean,
    [property: Id(1)] double Robust,
    [property: Id(2)] int Images);

/// <summary>
/// One finished epoch: which prompts it trained ("adversarial" or "clean"), its number within them, learning rate, mean
/// loss and accuracy on its batches' clean and attacked halves, the held-out accuracy of the prompts it trained, seconds and silo.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingEpoch(
    [property: Id(0)] string Prompts,
    [property: Id(1)] int Epoch,
    [property: Id(2)] double LearningRate,
    [property: Id(3)] double Loss,
    [property: Id(4)] double TrainCleanAccuracy,
    [property: Id(5)] double? TrainAdversarialAccuracy,
    [property: Id(6)] PromptTrainingAccuracy Validation,
    [property: Id(7)] double Seconds,
    [property: Id(8)] string Silo);

/// <summary>A training job's state and curve; when completed, the prompt artifact version it made.</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingStatus(
    [property: Id(0)] string JobId,
    [property: Id(1)] string TenantId,
    [property: Id(2)] string? Name,
    [property: Id(3)] JobState State,
    [property: Id(4)] int Images,
    [property: Id(5)] int EpochsDone,
    [property: Id(6)] int EpochsTotal,
    [property: Id(7)] string Vocabulary,
    [property: Id(8)] int VocabularyVersion,
    [property: Id(9)] PromptTrainingRequest Request,
    [property: Id(10)] ImmutableArray<PromptTrainingEpoch> Curve,
    [property: Id(11)] PromptTrainingAccuracy? Before,
    [property: Id(12)] PromptTrainingAccuracy? After,
    [property: Id(13)] PromptArtifactInfo? Artifact,
    [property: Id(14)] int TrainImages,
    [property: Id(15)] int ValidationImages,
    [property: Id(16)] DateTimeOffset CreatedAt,
    [property: Id(17)] DateTimeOffset? StartedAt,
    [property: Id(18)] DateTimeOffset? FinishedAt,
    [property: Id(19)] string? Error,
    [property: Id(20)] string? Waiting);

/// <summary>What a worker needs of a training job for any of its steps (the images by index, with their label indices).</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingWork(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] PromptTrainingRequest Request,
    [property: Id(3)] ImmutableArray<string> Labels,
    [property: Id(4)] ImmutableArray<string> PromptTexts,
    [property: Id(5)] ImmutableArray<int> ImageLabels,
    [property: Id(6)] ImmutableArray<int> Train,
    [property: Id(7)] ImmutableArray<int> Validation);

/// <summary>
/// One trained epoch: its figures and the checkpoint to continue from. The job stores the checkpoint itself, and only while
/// it still runs, so a step it stopped waiting for (cancelled, or retried on another silo) leaves nothing behind.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingEpochResult(
    [property: Id(0)] PromptTrainingEpoch Epoch,
    [property: Id(1)] byte[] Checkpoint);

/// <summary>What a finished training made: the artifact version and the held-out accuracy of its adversarial prompts.</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingOutcome(
    [property: Id(0)] PromptArtifactInfo Artifact,
    [property: Id(1)] PromptTrainingAccuracy After);

/// <summary>A training job's progress as observers get it: the state, epochs done of all, the latest epoch, and why it waits or stopped.</summary>
[GenerateSerializer, Immutable]
public sealed record PromptTrainingProgress(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobState State,
    [property: Id(2)] int EpochsDone,
    [property: Id(3)] int EpochsTotal,
    [property: Id(4)] PromptTrainingEpoch? Latest,
    [property: Id(5)] string? Waiting);

/// <summary>Follows prompt training jobs (the gateways' live bridge).</summary>
public interface IPromptTrainingObserver : IGrainObserver
{
    [OneWay] Task OnTrainingProgress(PromptTrainingProgress progress);
}

/// <summary>
/// A prompt training job (key: <c>train-…</c>) bound to one tenant at creation. Every call carries the caller's tenant id; a
/// different tenant gets <see cref="TaptNotFoundException"/>, as for a job that does not exist.
/// </summary>
public interface IPromptTrainingJobGrain : ITenantDataGrain
{
    const int MaxImages = 5_000;

    Task<PromptTrainingStatus> CreateAsync(PromptTrainingDefinition definition);

    /// <summary>Stores the labelled images (each label one of the vocabulary's) as blobs; only while open.</summary>
    Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<EvaluationImage> images);

    /// <summary>
    /// Splits the images (per class: a held-out share, then up to the shots per class) and trains on an accelerator silo;
    /// takes the running slots and charges the tenant's daily images (images × epochs) as an evaluation's start does.
    /// </summary>
    Task<PromptTrainingStatus> StartAsync(string tenantId, JobLimits? limits = null);

    /// <summary>Stops the job within a training step; nothing is stored as an artifact. Idempotent.</summary>
    Task<PromptTrainingStatus> CancelAsync(string tenantId);

    Task<PromptTrainingStatus> GetStatusAsync(string tenantId);

    /// <summary>The report (JSON): settings, split, curve, held-out accuracy before (the model's default artifact) and after, the artifact.</summary>
    Task<string> GetReportAsync(string tenantId);

    Task<bool> SubscribeAsync(string tenantId, IPromptTrainingObserver observer);

    Task UnsubscribeAsync(string tenantId, IPromptTrainingObserver observer);
}

/// <summary>
/// The prompt training executor of one accelerator silo (key: the silo's address, placed there): each call is one step of a
/// job, run on the silo's evaluation thread; between epochs the run lives only in its checkpoint blob, so any silo continues it.
/// </summary>
public interface IPromptTrainingWorkerGrain : IGrainWithStringKey
{
    /// <summary>Held-out accuracy of the model's default artifact (its adversarial prompts): the "before" of the report.</summary>
    [ResponseTimeout("02:00:00")]
    Task<PromptTrainingAccuracy> BaselineAsync(PromptTrainingWork work, CancellationToken cancellation = default);

    /// <summary>
    /// Trains epoch <paramref name="step"/> (0-based over adversarial then clean epochs) from the checkpoint of the step before
    /// (none for step 0) and returns the epoch's figures with the new checkpoint, for the job to store.
    /// </summary>
    [ResponseTimeout("02:00:00")]
    Task<PromptTrainingEpochResult> TrainEpochAsync(PromptTrainingWork work, int step, CancellationToken cancellation = default);

    /// <summary>
    /// From the final checkpoint: the reference statistics, the artifact (kept as the next version of the request's artifact
    /// name through the tenant's prompt artifacts) and the held-out accuracy of its adversarial prompts.
    /// </summary>
    [ResponseTimeout("02:00:00")]
    Task<PromptTrainingOutcome> FinishAsync(PromptTrainingWork work, CancellationToken cancellation = default);
}

/// <summary>The prompt training job ids of one tenant (key: tenant id), oldest first.</summary>
public interface IPromptTrainingIndexGrain : ITenantDataGrain
{
    const int MaxEntries = 10_000;

    Task AddAsync(string jobId);

    Task<ImmutableArray<string>> ListAsync();
}
