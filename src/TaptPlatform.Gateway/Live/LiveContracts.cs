using System.Collections.Immutable;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// The hub at <c>/hubs/jobs</c>. Client → server: <c>Subscribe(jobId)</c> returns a <see cref="JobSnapshot"/>
/// (the job's current state), after which the live events below arrive; <c>Unsubscribe(jobId)</c>.
/// <c>SubscribeEvaluation(evaluationId)</c> / <c>UnsubscribeEvaluation(evaluationId)</c> follow a robustness evaluation
/// (its snapshot carries its status; its progress comes as <c>jobProgress</c> with outcome counts, images × ε).
/// Server → client methods (names are these constants):
/// <list type="bullet">
/// <item><c>steps</c>(<see cref="StepEvent"/>[]): the latest tuning step of images in progress (coalesced per image).</item>
/// <item><c>imagesCompleted</c>(<see cref="ImageCompletedEvent"/>[]): final results, each once per subscription, with the gateway's time of sending.</item>
/// <item><c>jobProgress</c>(<see cref="JobProgressEvent"/>): counts, throughput and ETA (latest only).</item>
/// <item><c>resync</c>(<see cref="ResyncEvent"/>): events were dropped for this slow connection: subscribe again for a fresh snapshot.</item>
/// </list>
/// Every event names its job. Events may race the snapshot: clients merge by image index (results are final, a
/// step for a completed image is stale) and keep the progress with the most completed images.
/// </summary>
public static class JobsHubMethods
{
    public const string Path = "/hubs/jobs";
    public const string Subscribe = "Subscribe";
    public const string Unsubscribe = "Unsubscribe";
    public const string SubscribeEvaluation = "SubscribeEvaluation";
    public const string UnsubscribeEvaluation = "UnsubscribeEvaluation";
    public const string SubscribeTraining = "SubscribeTraining";
    public const string UnsubscribeTraining = "UnsubscribeTraining";
    public const string Steps = "steps";
    public const string ImagesCompleted = "imagesCompleted";
    public const string JobProgress = "jobProgress";
    public const string Resync = "resync";
}

/// <summary>A finished tuning step of one image. <see cref="Coalesced"/> counts earlier steps of the image this one replaced for a slow reader.</summary>
public sealed record StepEvent(
    string JobId,
    int ImageIndex,
    int Step,
    double EntropyLoss,
    double AlignmentAdversarial,
    double AlignmentClean,
    double TotalLoss,
    ImmutableArray<LabelProbability> TopK,
    int Coalesced = 0)
{
    public static StepEvent From(ImageStepProgress p) => new(p.JobId, p.ImageIndex, p.Step.Step, p.Step.EntropyLoss,
        p.Step.AlignmentAdversarial, p.Step.AlignmentClean, p.Step.TotalLoss, p.Step.TopK.IsDefault ? [] : p.Step.TopK);
}

/// <summary>
/// An image's final result: TAPT's prediction against plain CLIP's (baseline), flagged or not, and why.
/// <see cref="ServerTime"/> is when the gateway received the result from its job and queued it for this connection
/// (after <see cref="ResultView.CompletedAt"/>, when the job recorded it): a client on a synchronised clock measures
/// its delivery delay from it.
/// </summary>
public sealed record ImageCompletedEvent(string JobId, ResultView Result, DateTimeOffset ServerTime);

/// <summary>A job's progress: done of total, throughput (images per second, recent) and the estimated seconds left.</summary>
public sealed record JobProgressEvent(
    string JobId,
    JobState State,
    int Total,
    int Completed,
    int Succeeded,
    int Failed,
    int Flagged,
    double? ThroughputPerSecond,
    double? EtaSeconds,
    string? Waiting)
{
    public bool IsFinal => State is JobState.Completed or JobState.Cancelled;

    /// <summary>For a prompt training job: the epoch just finished (counts are epochs); null otherwise.</summary>
    public PromptTrainingEpoch? Epoch { get; init; }
}

public sealed record ResyncEvent(string JobId, string Reason);

/// <summary>
/// The state a subscriber starts from: the job, its labels (by index) and the results recorded so far. For a robustness
/// evaluation <see cref="Evaluation"/> is its status, the job's counts are outcomes (images × ε) and there are no results.
/// </summary>
public sealed record JobSnapshot(JobView Job, ImmutableArray<string> Labels, ImmutableArray<ResultView> Results, bool ResultsTruncated,
    EvaluationStatus? Evaluation = null);
