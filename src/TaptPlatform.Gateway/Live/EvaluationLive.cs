using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;

namespace TaptPlatform.Gateway.Live;

/// <summary>Robustness evaluations on the hub and the API: the evaluation grain for an id and its status as a <see cref="JobView"/>.</summary>
public static class EvaluationLive
{
    /// <summary>The evaluation grain for a well-formed id (an id that is no evaluation of the caller's is its "not found"); otherwise the same not-found.</summary>
    public static IEvaluationJobGrain Evaluation(this IGrainFactory grains, string? jobId) =>
        Identifiers.IsValidJobId(jobId) ? grains.GetGrain<IEvaluationJobGrain>(jobId!) : throw JobIds.NotFound(jobId);

    /// <summary>An evaluation as a job view: its counts are outcomes (images × ε), all succeeded when recorded.</summary>
    public static JobView View(EvaluationStatus s, DateTimeOffset now, double? throughput = null)
    {
        var p = ProgressEstimate.Of(s.State, s.OutcomesRecorded, s.OutcomesTotal - s.OutcomesRecorded, s.StartedAt, s.FinishedAt, now, throughput);
        return new JobView(s.JobId, s.Name, s.State, new JobCounts(s.OutcomesTotal, s.OutcomesRecorded, 0, 0), s.Vocabulary, s.VocabularyVersion,
            s.PromptConfiguration, s.PromptConfigurationVersion, s.Model, s.Request.Seed, s.CreatedAt, s.StartedAt, s.FinishedAt, s.Error ?? s.Waiting,
            p.ThroughputPerSecond, p.EtaSeconds);
    }
}
