using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>An evaluation's progress: outcomes recorded of images × ε, its state, and why it waits or stopped.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationProgress(
    [property: Id(0)] string EvaluationId,
    [property: Id(1)] JobState State,
    [property: Id(2)] int OutcomesTotal,
    [property: Id(3)] int OutcomesRecorded,
    [property: Id(4)] string? Waiting);

/// <summary>
/// Follows robustness evaluations (the gateways' live bridge), apart from jobs: an evaluation has outcomes per image and ε,
/// not per-image results or tuning steps, so it has a contract of its own.
/// </summary>
public interface IEvaluationObserver : IGrainObserver
{
    [OneWay] Task OnEvaluationProgress(EvaluationProgress progress);
}
