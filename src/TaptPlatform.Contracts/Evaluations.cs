using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>
/// What a tenant asks of a robustness evaluation: the vocabulary (its labels are the images' label set; latest version unless
/// pinned), the prompt configuration (model, prompt artifact, TAPT settings) and the attack: kind (pgd, cw, di, apgd-ce,
/// apgd-t, square, fab-t, autoattack, autoattack-rand), one or more ε (fractions of the [0,1] pixel range), steps, step size
/// (null: 1/255), restarts, protocol (nonadaptive | adaptive), EOT samples (adaptive), seed, batch size and Square's query
/// budget per image and restart (as <c>tapt eval</c>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationRequest(
    [property: Id(0)] string Vocabulary,
    [property: Id(1)] string PromptConfiguration,
    [property: Id(2)] string Attack,
    [property: Id(3)] ImmutableArray<double> Epsilons,
    [property: Id(4)] int Steps = 10,
    [property: Id(5)] double? StepSize = null,
    [property: Id(6)] int Restarts = 1,
    [property: Id(7)] string Protocol = "nonadaptive",
    [property: Id(8)] int Seed = 0,
    [property: Id(9)] int EotSamples = 1,
    [property: Id(10)] int BatchSize = 16,
    [property: Id(11)] int? VocabularyVersion = null,
    [property: Id(12)] string? Name = null,
    [property: Id(13)] int Queries = EvaluationRequest.DefaultQueries)
{
    public const int MaxEpsilons = 16;
    // Per-field bounds well above the documented evaluations (PGD-100, APGD's restarts, EOT of a few samples); what an
    // evaluation may cost as a whole is the operator's limit (EvaluationCost), checked by the gateway.
    public const int MaxSteps = 1_000;
    public const int MaxRestarts = 10;
    public const int MaxEotSamples = 32;
    /// <summary>Square's default budget, the ML core's (<c>AttackSettings.DefaultQueries</c>, AutoAttack's standard 5000).</summary>
    public const int DefaultQueries = 5000;
    public const int MaxQueries = 100_000;
    /// <summary>AutoAttack's EOT draws in its version for randomised defenses (the core's <c>AutoAttack.RandomisedEotSamples</c>).</summary>
    public const int RandomisedEotSamples = 20;
    public static readonly ImmutableArray<string> Attacks = ["pgd", "cw", "di", "apgd-ce", "apgd-t", "square", "fab-t", "autoattack", "autoattack-rand"];

    /// <summary>Attacks that read Square's query budget (<see cref="Queries"/>).</summary>
    [JsonIgnore]
    public bool UsesQueries => Attack is "square" or "autoattack";

    /// <summary>Attacks that run a fixed single restart per stage (AutoAttack's versions, FAB-T), so <see cref="Restarts"/> must stay 1.</summary>
    [JsonIgnore]
    public bool HasFixedRestarts => Attack is "fab-t" or "autoattack" or "autoattack-rand";

    /// <summary>Throws <see cref="TaptRequestException"/> when a setting is out of range.</summary>
    public void Validate()
    {
        if (!Identifiers.IsValidName(Vocabulary)) throw new TaptRequestException("vocabulary: the name of one of your vocabularies is required");
        if (!Identifiers.IsValidName(PromptConfiguration)) throw new TaptRequestException("promptConfiguration: the name of one of your prompt configurations is required");
        if (!Attacks.Contains(Attack)) throw new TaptRequestException($"attack must be one of {string.Join(", ", Attacks)}");
        if (Epsilons.IsDefaultOrEmpty || Epsilons.Length > MaxEpsilons) throw new TaptRequestException($"epsilons: 1 to {MaxEpsilons} values");
        if (Epsilons.Any(e => double.IsNaN(e) || e < 0 || e > 1)) throw new TaptRequestException("each ε must be in [0, 1] (a fraction of the pixel range: 1/255 = 0.00392)");
        if (Epsilons.Distinct().Count() != Epsilons.Length) throw new TaptRequestException("epsilons must be distinct");
        if (Steps < 1 || Steps > MaxSteps) throw new TaptRequestException($"steps must be in 1..{MaxSteps}");
        if (StepSize is double s && (double.IsNaN(s) || s <= 0 || s > 1)) throw new TaptRequestException("stepSize must be in (0, 1]");
        if (Restarts < 1 || Restarts > MaxRestarts) throw new TaptRequestException($"restarts must be in 1..{MaxRestarts}");
        if (Protocol is not ("nonadaptive" or "adaptive")) throw new TaptRequestException("protocol must be nonadaptive or adaptive");
        if (EotSamples < 1 || EotSamples > MaxEotSamples) throw new TaptRequestException($"eot must be in 1..{MaxEotSamples}");
        if (BatchSize is < 1 or > 256) throw new TaptRequestException("batchSize must be in 1..256");
        if (Queries < 1 || Queries > MaxQueries) throw new TaptRequestException($"queries (Square's budget per image and restart) must be in 1..{MaxQueries}");
        if (HasFixedRestarts && Restarts != 1)
            throw new TaptRequestException($"{Attack} runs one restart per stage, as AutoAttack's reference does: restarts must be 1 (got {Restarts})");
        if (Attack == "autoattack-rand" && Protocol == "adaptive" && EotSamples < RandomisedEotSamples)
            throw new TaptRequestException($"autoattack-rand through the defense averages at least {RandomisedEotSamples} EOT draws per step (AutoAttack's version for " +
                $"randomised defenses): eot must be in {RandomisedEotSamples}..{MaxEotSamples} (got {EotSamples})");
    }
}

/// <summary>An evaluation pinned at creation to copies of the vocabulary version and prompt configuration.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationDefinition(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] VocabularyVersion Vocabulary,
    [property: Id(3)] PromptConfiguration Configuration,
    [property: Id(4)] EvaluationRequest Request,
    [property: Id(5)] DateTimeOffset CreatedAt)
{
    /// <summary>Evaluation ids start with this prefix (a readable shape; nothing routes on it).</summary>
    public const string IdPrefix = "eval-";

    public static string NewId() => IdPrefix + Guid.NewGuid().ToString("N");
}

/// <summary>
/// One labelled image: display name, label (one of the vocabulary's) and encoded bytes, or, for a large image, empty
/// bytes and <see cref="Staged"/>, the staging blob the gateway streamed it into (see <see cref="JobImage"/>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationImage(
    [property: Id(0)] string Name,
    [property: Id(1)] string Label,
    [property: Id(2)] byte[] Content)
{
    [Id(3)] public StagedImage? Staged { get; init; }
}

/// <summary>
/// The outcome of one image at one ε (recorded once): its label and the predictions of plain CLIP, the pre-trained prompts (APT)
/// and TAPT on the clean image and under attack; for AutoAttack the stage that fooled each method (<see cref="BrokenBy"/>), for
/// Square the queries it took (<see cref="Queries"/>), and whether each attacked model's input gradient at the clean image was
/// all zero or not finite (the gradient masking check).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationImageOutcome(
    [property: Id(0)] int Index,
    [property: Id(1)] int EpsilonIndex,
    [property: Id(2)] int Label,
    [property: Id(3)] int ClipClean,
    [property: Id(4)] int AptClean,
    [property: Id(5)] int TaptClean,
    [property: Id(6)] int ClipRobust,
    [property: Id(7)] int AptRobust,
    [property: Id(8)] int TaptRobust,
    [property: Id(9)] double Seconds,
    [property: Id(10)] EvaluationMethodFigures? BrokenBy = null,
    [property: Id(11)] EvaluationMethodFigures? Queries = null,
    [property: Id(12)] EvaluationMethodFlags? ZeroGradient = null,
    [property: Id(13)] EvaluationMethodFlags? NonFiniteGradient = null);

/// <summary>
/// One figure per method for one image; null for a method the attack did not run against (TAPT under the non-adaptive
/// protocol). For AutoAttack's <see cref="EvaluationImageOutcome.BrokenBy"/>: the 1-based stage that fooled the image, 0 when
/// it was misclassified before any attack, −1 when no stage did.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationMethodFigures(
    [property: Id(0)] int? Clip,
    [property: Id(1)] int? Apt,
    [property: Id(2)] int? Tapt);

/// <summary>One yes/no per method for one image; null for a method that was not measured (TAPT under the non-adaptive protocol).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationMethodFlags(
    [property: Id(0)] bool? Clip,
    [property: Id(1)] bool? Apt,
    [property: Id(2)] bool? Tapt);

/// <summary>An evaluation's state and progress (outcomes recorded of images × ε), and its cost per image (<see cref="EvaluationCost"/>).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationStatus(
    [property: Id(0)] string JobId,
    [property: Id(1)] string TenantId,
    [property: Id(2)] string? Name,
    [property: Id(3)] JobState State,
    [property: Id(4)] int Images,
    [property: Id(5)] int OutcomesRecorded,
    [property: Id(6)] int OutcomesTotal,
    [property: Id(7)] string Model,
    [property: Id(8)] string Vocabulary,
    [property: Id(9)] int VocabularyVersion,
    [property: Id(10)] string PromptConfiguration,
    [property: Id(11)] int PromptConfigurationVersion,
    [property: Id(12)] EvaluationRequest Request,
    [property: Id(13)] DateTimeOffset CreatedAt,
    [property: Id(14)] DateTimeOffset? StartedAt,
    [property: Id(15)] DateTimeOffset? FinishedAt,
    [property: Id(16)] string? Error,
    [property: Id(17)] string? Waiting,
    [property: Id(18)] long CostPerImage = 0)
{
    /// <summary>The evaluation's cost with the images it holds (see <see cref="EvaluationCost"/>).</summary>
    public long Cost => CostPerImage > 0 && Images > long.MaxValue / CostPerImage ? long.MaxValue : CostPerImage * Images;
}

/// <summary>An evaluation's settings for one ε as its units carry them: every image of the job (by index) with its label index, and the images already recorded (<see cref="Skip"/>).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationWork(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] PromptConfiguration Configuration,
    [property: Id(3)] ImmutableArray<string> Labels,
    [property: Id(4)] ImmutableArray<string> PromptTexts,
    [property: Id(5)] ImmutableArray<int> ImageLabels,
    [property: Id(6)] EvaluationRequest Request,
    [property: Id(7)] int EpsilonIndex,
    [property: Id(8)] ImmutableArray<int> Skip);

/// <summary>
/// One unit of an evaluation's work, as the silos' executors schedule it: one batch of images (dataset indices, in the
/// evaluation's order) at one ε, from where the ε's random streams stood after the batch before (the generator's state and
/// the adaptive attack's tuning-call count; null state: the first batch).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationUnit(
    [property: Id(0)] EvaluationWork Work,
    [property: Id(1)] int Batch,
    [property: Id(2)] ImmutableArray<int> Images,
    [property: Id(3)] byte[]? Cursor,
    [property: Id(4)] int EotCalls);

/// <summary>What a unit leaves for the next batch of its ε (the random streams' positions) and what it was pinned to.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationUnitResult(
    [property: Id(0)] EvaluationRunInfo Info,
    [property: Id(1)] byte[] Cursor,
    [property: Id(2)] int EotCalls);

/// <summary>What an ε run was pinned to and cost.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationRunInfo(
    [property: Id(0)] int EpsilonIndex,
    [property: Id(1)] double Epsilon,
    [property: Id(2)] string AttackName,
    [property: Id(3)] string Gradient,
    [property: Id(4)] string ModelChecksum,
    [property: Id(5)] string PromptArtifact,
    [property: Id(6)] string PromptArtifactSha256,
    [property: Id(7)] int PromptArtifactFormatVersion,
    [property: Id(8)] string Design,
    [property: Id(9)] int Views,
    [property: Id(10)] int TaptSteps,
    [property: Id(11)] double LearningRate,
    [property: Id(12)] string EngineVersion,
    [property: Id(13)] double SecondsPerImage,
    [property: Id(14)] string Silo);

/// <summary>A stored file of an evaluation: content and type.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationFile(
    [property: Id(0)] byte[] Content,
    [property: Id(1)] string ContentType);

/// <summary>
/// A robustness evaluation (key: <c>eval-…</c>) bound to one tenant at creation. Every call carries the caller's tenant id; a
/// different tenant gets <see cref="TaptNotFoundException"/>, as for an evaluation that does not exist.
/// </summary>
public interface IEvaluationJobGrain : ITenantDataGrain
{
    const int MaxImages = 10_000;

    Task<EvaluationStatus> CreateAsync(EvaluationDefinition definition);

    /// <summary>Stores the images (clean originals) as blobs and records them with their labels; only while open.</summary>
    Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<EvaluationImage> images);

    /// <summary>
    /// Seals the evaluation and runs it on an accelerator silo. Like a job's start, it takes the tenant's and the
    /// cluster's running slots under <paramref name="limits"/> (throws <see cref="TaptQuotaException"/> when one is
    /// refused) and its end gives them back.
    /// </summary>
    Task<EvaluationStatus> StartAsync(string tenantId, JobLimits? limits = null);

    /// <summary>
    /// Stops the evaluation: an open one never starts; a running one stops within an attack step, gives its running
    /// slots back and keeps the outcomes recorded so far (its report stays partial). Idempotent; a finished evaluation is
    /// left as it is.
    /// </summary>
    Task<EvaluationStatus> CancelAsync(string tenantId);

    Task<EvaluationStatus> GetStatusAsync(string tenantId);

    /// <summary>The robustness report (JSON); partial while running.</summary>
    Task<string> GetReportAsync(string tenantId);

    /// <summary>Recorded outcomes, in (ε, image) order.</summary>
    Task<ImmutableArray<EvaluationImageOutcome>> GetOutcomesAsync(string tenantId);

    Task<ImmutableArray<ArtifactInfo>> ListArtifactsAsync(string tenantId);

    /// <summary>A stored artifact by its path under the job (e.g. <c>adversarial/eps0/00003/apt.png</c>).</summary>
    Task<EvaluationFile> GetArtifactAsync(string tenantId, string path);

    /// <summary>
    /// Subscribes (or renews) a progress observer; true when this activation already had it. Subscriptions expire unless
    /// renewed within <see cref="IJobGrain.ObserverExpiry"/>.
    /// </summary>
    Task<bool> SubscribeAsync(string tenantId, IEvaluationObserver observer);

    Task UnsubscribeAsync(string tenantId, IEvaluationObserver observer);

    /// <summary>The worker records a batch's outcomes (each kept once: the first record of an image at an ε wins).</summary>
    Task RecordOutcomesAsync(string tenantId, ImmutableArray<EvaluationImageOutcome> outcomes);
}

/// <summary>
/// The evaluation executor of one accelerator silo (key: the silo's address, placed on that silo): runs units on the
/// silo's evaluation thread, serving tenants in turn.
/// </summary>
public interface IEvaluationWorkerGrain : IGrainWithStringKey
{
    /// <summary>
    /// Runs one unit, stores its artifacts and records its outcomes with the evaluation; cancelling
    /// <paramref name="cancellation"/> (the caller's, propagated by Orleans) stops it within an attack step.
    /// </summary>
    [ResponseTimeout("02:00:00")]
    Task<EvaluationUnitResult> RunAsync(EvaluationUnit unit, CancellationToken cancellation = default);
}
