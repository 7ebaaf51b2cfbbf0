using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>One accepted image of a job (its bytes are the blob <c>jobs/{jobId}/inputs/{index}</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record JobImageEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] string Format,
    [property: Id(2)] long Size,
    [property: Id(3)] string Sha256);

/// <summary>The durable state of a job. Result summaries are keyed by image index: at most one per image.</summary>
[GenerateSerializer]
public sealed class JobGrainState
{
    [Id(0)] public JobDefinition? Definition { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public List<JobImageEntry> Images { get; set; } = [];
    [Id(3)] public Dictionary<int, ImageResult> Results { get; set; } = [];
    [Id(4)] public DateTimeOffset? StartedAt { get; set; }
    [Id(5)] public DateTimeOffset? FinishedAt { get; set; }

    /// <summary>
    /// Folds <paramref name="mine"/> (this activation's) into <paramref name="stored"/> (another activation's, written
    /// meanwhile): results are a union, images and states only move forward.
    /// </summary>
    public static void Merge(JobGrainState stored, JobGrainState mine)
    {
        stored.Definition ??= mine.Definition;
        if (mine.Images.Count > stored.Images.Count) stored.Images = mine.Images;
        foreach (var (i, r) in mine.Results) stored.Results.TryAdd(i, r);
        if (Rank(mine.State) > Rank(stored.State)) stored.State = mine.State;
        stored.StartedAt ??= mine.StartedAt;
        stored.FinishedAt ??= mine.FinishedAt;
        static int Rank(JobState s) => s switch { JobState.Open => 0, JobState.Running => 1, _ => 2 };
    }
}
