using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Live;

/// <summary>
/// Throughput and time left of a job or an evaluation, computed here only, for the API's views and the hub's events
/// alike: images (or outcomes) per second, recent when a meter saw the completions, else since the start; seconds left
/// while running, 0 once finished, unknown otherwise.
/// </summary>
public sealed record ProgressEstimate(double? ThroughputPerSecond, double? EtaSeconds)
{
    public static ProgressEstimate Of(JobState state, int completed, int remaining, DateTimeOffset? startedAt, DateTimeOffset? finishedAt,
        DateTimeOffset now, double? recentRate = null)
    {
        var throughput = recentRate ?? (startedAt is { } started && completed > 0
            ? completed / Math.Max(0.001, ((finishedAt ?? now) - started).TotalSeconds)
            : null);
        double? eta = state switch
        {
            JobState.Running when throughput is > 0 => remaining / throughput,
            JobState.Completed or JobState.Cancelled => 0,
            _ => null,
        };
        return new(throughput is null ? null : Math.Round(throughput.Value, 3), eta is null ? null : Math.Round(eta.Value, 1));
    }
}
