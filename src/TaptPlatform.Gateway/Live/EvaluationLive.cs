using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;

namespace TaptPlatform.Gateway.Live;

/// <summary>Robustness evaluations on the hub: the evaluation grain for an <c>eval-…</c> id and its status as a <see cref="JobView"/>.</summary>
public static class EvaluationLive
{
    /// <summary>The evaluation grain for an evaluation id of the right shape; otherwise the same not-found a foreign job gets.</summary>
    public static IEvaluationJobGrain Evaluation(this IGrainFactory grains, string? jobId) =>
        Identifiers.IsValidJobId(jobId) && EvaluationDefinition.IsEvaluationId(jobId) ? grains.GetGrain<IEvaluationJobGrain>(jobId!) : throw JobIds.NotFound(jobId);

    /// <summary>An evaluation as a job view: its counts are outcomes (images × ε), all succeeded when recorded.</summary>
    public static JobView View(EvaluationStatus s, DateTimeOffset now, double? throughput = null)
    {
        throughput ??= s.StartedAt is { } started && s.OutcomesRecorded > 0
            ? s.OutcomesRecorded / Math.Max(0.001, ((s.FinishedAt ?? now) - started).TotalSeconds)
            : null;
        var remaining = s.OutcomesTotal - s.OutcomesRecorded;
        double? eta = s.State switch
        {
            JobState.Running when throughput is > 0 => remaining / throughput,
            JobState.Completed or JobState.Cancelled => 0,
            _ => null,
        };
        return new JobView(s.JobId, s.Name, s.State, new JobCounts(s.OutcomesTotal, s.OutcomesRecorded, 0, 0), s.Vocabulary, s.VocabularyVersion,
            s.PromptConfiguration, s.PromptConfigurationVersion, s.Model, s.Request.Seed, s.CreatedAt, s.StartedAt, s.FinishedAt, s.Error ?? s.Waiting,
            throughput is null ? null : Math.Round(throughput.Value, 3), eta is null ? null : Math.Round(eta.Value, 1));
    }
}
