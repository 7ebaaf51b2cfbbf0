using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>What a tenant asks for: a vocabulary (latest version unless pinned), a prompt configuration and the views' seed.</summary>
[GenerateSerializer, Immutable]
public sealed record JobRequest(
    [property: Id(0)] string Vocabulary,
    [property: Id(1)] string PromptConfiguration,
    [property: Id(2)] int? VocabularyVersion = null,
    [property: Id(3)] int Seed = 0,
    [property: Id(4)] string? Name = null);

/// <summary>
/// Everything a job is pinned to when it is created: copies of the vocabulary version and the prompt
/// configuration, so later changes by the tenant never change a submitted job.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobDefinition(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string JobId,
    [property: Id(2)] string? Name,
    [property: Id(3)] VocabularyVersion Vocabulary,
    [property: Id(4)] PromptConfiguration Configuration,
    [property: Id(5)] int Seed,
    [property: Id(6)] DateTimeOffset CreatedAt);

/// <summary>
/// One uploaded image: a display name and the encoded bytes (PNG, JPEG, WebP, BMP or GIF), or, for a large image,
/// empty bytes and <see cref="Staged"/>: the gateway streamed it into a staging blob of the job, so it never travels
/// in a grain message.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobImage(
    [property: Id(0)] string Name,
    [property: Id(1)] byte[] Content)
{
    [Id(2)] public StagedImage? Staged { get; init; }

    /// <summary>A large image by reference to its staging blob.</summary>
    public static JobImage Of(string name, StagedImage staged) => new(name, []) { Staged = staged };
}

/// <summary>
/// An image the gateway streamed into a staging blob of a job (<c>staging/jobs/{jobId}/{Id}</c> in the tenant's
/// container): the receiving grain reads it from there, checks its length and hash, and deletes it.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record StagedImage(
    [property: Id(0)] string Id,
    [property: Id(1)] long Length,
    [property: Id(2)] string Sha256);

/// <summary>An image refused at upload, with the reason (format, size, limits).</summary>
[GenerateSerializer, Immutable]
public sealed record RejectedImage(
    [property: Id(0)] string Name,
    [property: Id(1)] string Reason);

/// <summary>What became of one offered image: its cleaned name and either its index in the job or why it was refused.</summary>
[GenerateSerializer, Immutable]
public sealed record OfferedImage(
    [property: Id(0)] string Name,
    [property: Id(1)] int? Index,
    [property: Id(2)] string? Rejection);

/// <summary>
/// The acknowledgement of an upload. Every accepted image is already stored as a blob and recorded in the
/// job's durable state when this is returned. <see cref="Parts"/> says, per offered image and in the order offered,
/// what became of it; <see cref="AcceptedIndices"/> and <see cref="Rejected"/> are the same, split.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AddImagesReceipt(
    [property: Id(0)] ImmutableArray<int> AcceptedIndices,
    [property: Id(1)] ImmutableArray<RejectedImage> Rejected,
    [property: Id(2)] int TotalImages)
{
    [Id(3)] public ImmutableArray<OfferedImage> Parts { get; init; } = [];

    /// <summary>The receipt of <paramref name="parts"/>, in the order offered.</summary>
    public static AddImagesReceipt Of(ImmutableArray<OfferedImage> parts, int totalImages) => new(
        [.. parts.Where(p => p.Index is not null).Select(p => p.Index!.Value)],
        [.. parts.Where(p => p.Index is null).Select(p => new RejectedImage(p.Name, p.Rejection ?? "rejected"))],
        totalImages)
    { Parts = parts };
}

/// <summary>Where a job is in its life.</summary>
[GenerateSerializer]
public enum JobState
{
    /// <summary>Created; accepting images.</summary>
    Open,
    /// <summary>Sealed; images are being classified.</summary>
    Running,
    /// <summary>Every image has exactly one result.</summary>
    Completed,
    /// <summary>Stopped by the tenant; images without a result stay without one.</summary>
    Cancelled,
}

/// <summary>Counts of a job's images. Every image ends with exactly one result: succeeded or failed.</summary>
[GenerateSerializer, Immutable]
public sealed record JobCounts(
    [property: Id(0)] int Total,
    [property: Id(1)] int Succeeded,
    [property: Id(2)] int Failed,
    [property: Id(3)] int Flagged)
{
    public int Completed => Succeeded + Failed;
    public int Remaining => Total - Completed;
}

/// <summary>A job's state, what it is pinned to, and its counts.</summary>
[GenerateSerializer, Immutable]
public sealed record JobStatus(
    [property: Id(0)] string JobId,
    [property: Id(1)] string TenantId,
    [property: Id(2)] string? Name,
    [property: Id(3)] JobState State,
    [property: Id(4)] JobCounts Counts,
    [property: Id(5)] string Vocabulary,
    [property: Id(6)] int VocabularyVersion,
    [property: Id(7)] string PromptConfiguration,
    [property: Id(8)] int PromptConfigurationVersion,
    [property: Id(9)] string Model,
    [property: Id(10)] int Seed,
    [property: Id(11)] DateTimeOffset CreatedAt,
    [property: Id(12)] DateTimeOffset? StartedAt,
    [property: Id(13)] DateTimeOffset? FinishedAt,
    [property: Id(14)] string? Waiting);

/// <summary>Why an image was flagged for audit.</summary>
[Flags]
[GenerateSerializer]
public enum FlagReasons
{
    None = 0,
    /// <summary>TAPT's prediction differs from plain CLIP's.</summary>
    ChangedPrediction = 1,
    /// <summary>The image's block statistics sit closer to attacked images than to clean ones.</summary>
    CloserToAttacked = 2,
    /// <summary>The defended prediction's probability is below the configuration's threshold.</summary>
    LowConfidence = 4,
}

/// <summary>A label's probability.</summary>
[GenerateSerializer, Immutable]
public sealed record LabelProbability(
    [property: Id(0)] int Index,
    [property: Id(1)] string Label,
    [property: Id(2)] float Probability);

/// <summary>One image's result as listed in pages and progress events (the full record is in blob storage).</summary>
[GenerateSerializer, Immutable]
public sealed record ImageResult(
    [property: Id(0)] int Index,
    [property: Id(1)] string Name,
    [property: Id(2)] string? Error,
    [property: Id(3)] int Prediction,
    [property: Id(4)] string? Label,
    [property: Id(5)] float Confidence,
    [property: Id(6)] int BaselinePrediction,
    [property: Id(7)] int AptPrediction,
    [property: Id(8)] FlagReasons Flags,
    [property: Id(9)] ImmutableArray<LabelProbability> TopK,
    [property: Id(10)] DateTimeOffset CompletedAt)
{
    public bool Succeeded => Error is null;
    public bool Flagged => Flags != FlagReasons.None;
}

/// <summary>The full record of one image: the summary plus every probability, the tuning steps and the statistics distances.</summary>
[GenerateSerializer, Immutable]
public sealed record ImageResultDetail(
    [property: Id(0)] ImageResult Summary,
    [property: Id(1)] TuningOutcome? Outcome);

/// <summary>A page of results in image order.</summary>
[GenerateSerializer, Immutable]
public sealed record ResultPage(
    [property: Id(0)] ImmutableArray<ImageResult> Items,
    [property: Id(1)] int Offset,
    [property: Id(2)] int TotalResults,
    [property: Id(3)] int? NextOffset);

/// <summary>A stored artifact of a job: its kind (inputs, results, audit), image index and size.</summary>
[GenerateSerializer, Immutable]
public sealed record ArtifactInfo(
    [property: Id(0)] string Kind,
    [property: Id(1)] string Name,
    [property: Id(2)] long Size);
