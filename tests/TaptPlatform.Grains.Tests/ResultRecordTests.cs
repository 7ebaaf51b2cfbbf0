using System.Collections.Immutable;
using System.Text.Json.Nodes;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tests;

public sealed class ResultRecordTests
{
    private static readonly JobDefinition Job = new("acme", Identifiers.NewJobId(), null,
        new VocabularyVersion("acme", "v", 1, [new LabelEntry("cat"), new LabelEntry("dog")], VocabularyDefinition.DefaultTemplate, DateTimeOffset.UnixEpoch),
        new PromptConfiguration("p", "tiny", Flagging: new FlaggingPolicy(MinimumConfidence: 0.9)), 0, DateTimeOffset.UnixEpoch);

    private static readonly TuningOutcome Outcome = new(3, "tiny", "sum", "tapt-prompts", "V", 16, 1, 0.0005,
        0, [0.6f, 0.4f], 1, [0.3f, 0.7f], 1, [0.2f, 0.8f], [], null, 0.5, 1);

    [Fact]
    public void Each_kind_of_reply_has_one_summary()
    {
        var now = DateTimeOffset.UnixEpoch;
        var tuned = ResultRecords.Summarize("a.png", new TuningReply.Tuned(Outcome), Job, now);
        Assert.Equal((3, null, 1, "dog", 0), (tuned.Index, tuned.Error, tuned.Prediction, tuned.Label, tuned.BaselinePrediction));
        Assert.Equal(FlagReasons.ChangedPrediction | FlagReasons.LowConfidence, tuned.Flags);
        Assert.Equal(["dog", "cat"], tuned.TopK.Select(l => l.Label));

        var rejected = ResultRecords.Summarize("b.png", new TuningReply.Rejected(4, "Truncated: no image data"), Job, now);
        Assert.Equal((4, "image rejected: Truncated: no image data", -1, null, FlagReasons.None), (rejected.Index, rejected.Error, rejected.Prediction, rejected.Label, rejected.Flags));
        var failed = ResultRecords.Summarize("c.png", new TuningReply.Failed(5, "the stored input image is missing"), Job, now);
        Assert.Equal((5, "the stored input image is missing"), (failed.Index, failed.Error));
    }

    [Fact]
    public void A_result_record_written_with_the_outcome_s_former_rejection_field_still_reads()
    {
        var summary = ResultRecords.Summarize("a.png", new TuningReply.Tuned(Outcome), Job, DateTimeOffset.UnixEpoch);
        // As earlier versions wrote it: the outcome carried a "rejection" member, null for every tuned image.
        var json = JsonNode.Parse(ResultRecords.Serialize(new ImageResultDetail(summary, Outcome)).ToString())!;
        json["outcome"]!["rejection"] = null;
        var read = ResultRecords.Deserialize(BinaryData.FromString(json.ToJsonString()));
        Assert.Equal(summary with { TopK = [] }, read.Summary with { TopK = [] });
        Assert.Equal(summary.TopK.ToArray(), read.Summary.TopK.ToArray());
        Assert.Equal(Outcome.Probabilities.ToArray(), read.Outcome!.Probabilities.ToArray());
        Assert.Equal(Outcome with { Probabilities = [], BaselineProbabilities = [], AptProbabilities = [], StepMetrics = [] },
            read.Outcome with { Probabilities = [], BaselineProbabilities = [], AptProbabilities = [], StepMetrics = [] });
    }
}
