using TaptPlatform.Grains.JobParts;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>One accepted labelled image of an evaluation (its bytes are the blob <c>jobs/{jobId}/inputs/{index}</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationImageEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] int Label,
    [property: Id(2)] string Format);

[GenerateSerializer]
public sealed class EvaluationJobState : IJobLife
{
    [Id(0)] public EvaluationDefinition? Definition { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public List<EvaluationImageEntry> Images { get; set; } = [];
    /// <summary>Outcomes keyed "{ε index}:{image index}": at most one each.</summary>
    [Id(3)] public Dictionary<string, EvaluationImageOutcome> Outcomes { get; set; } = [];
    [Id(4)] public Dictionary<int, EvaluationRunInfo> Runs { get; set; } = [];
    [Id(5)] public DateTimeOffset? StartedAt { get; set; }
    [Id(6)] public DateTimeOffset? FinishedAt { get; set; }
    [Id(7)] public string? Error { get; set; }
    /// <summary>Per ε, where its next unit starts (absent in state written before units: the ε starts again at its first batch).</summary>
    [Id(8)] public Dictionary<int, EvaluationCursorState> Cursors { get; set; } = [];
}

/// <summary>An ε's next batch and the random streams' positions after the batches before it.</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationCursorState(
    [property: Id(0)] int NextBatch,
    [property: Id(1)] byte[]? State,
    [property: Id(2)] int EotCalls);
