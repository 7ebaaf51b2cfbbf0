using TaptPlatform.Grains.JobParts;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// A prompt training job's durable state: its images (labels as vocabulary indices; bytes in the job's input blobs), the
/// split made at start, the epochs done (the checkpoint blob of the last one is where a resumed run continues), the
/// baseline and final accuracies and the artifact it made.
/// </summary>
[GenerateSerializer]
public sealed class PromptTrainingJobState : IJobLife
{
    [Id(0)] public PromptTrainingDefinition? Definition { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public List<EvaluationImageEntry> Images { get; set; } = [];
    [Id(3)] public List<int> Train { get; set; } = [];
    [Id(4)] public List<int> Validation { get; set; } = [];
    [Id(5)] public List<PromptTrainingEpoch> Curve { get; set; } = [];
    [Id(6)] public PromptTrainingAccuracy? Before { get; set; }
    [Id(7)] public PromptTrainingAccuracy? After { get; set; }
    [Id(8)] public PromptArtifactInfo? Artifact { get; set; }
    [Id(9)] public DateTimeOffset? StartedAt { get; set; }
    [Id(10)] public DateTimeOffset? FinishedAt { get; set; }
    [Id(11)] public string? Error { get; set; }
    /// <summary>The daily images charged at start (given back when the start could not be recorded).</summary>
    [Id(12)] public int ChargedImages { get; set; }
}
