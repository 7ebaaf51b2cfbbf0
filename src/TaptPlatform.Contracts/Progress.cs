using Orleans.Concurrency;
namespace TaptPlatform.Contracts;

/// <summary>A test-time step of one image finished (losses and top labels after the step).</summary>
[GenerateSerializer, Immutable]
public sealed record ImageStepProgress(
    [property: Id(0)] string JobId,
    [property: Id(1)] int ImageIndex,
    [property: Id(2)] StepMetrics Step);

/// <summary>An image's result was recorded (once).</summary>
[GenerateSerializer, Immutable]
public sealed record ImageCompleted(
    [property: Id(0)] string JobId,
    [property: Id(1)] ImageResult Result);

/// <summary>A job's counts or state changed.</summary>
[GenerateSerializer, Immutable]
public sealed record JobProgress(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobState State,
    [property: Id(2)] JobCounts Counts,
    [property: Id(3)] string? Waiting);

/// <summary>
/// Receives a job's progress. A gateway creates one with <c>IGrainFactory.CreateObjectReference</c> and subscribes
/// it to a job (renewing the subscription within <see cref="IJobGrain.ObserverExpiry"/>). Delivery is best-effort:
/// the authoritative record is the job's status and results.
/// </summary>
public interface IJobObserver : IGrainObserver
{
    [OneWay] Task OnImageStep(ImageStepProgress progress);
    [OneWay] Task OnImageCompleted(ImageCompleted completed);
    [OneWay] Task OnJobProgress(JobProgress progress);
}
