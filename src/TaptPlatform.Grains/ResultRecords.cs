using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>Flagging, result summaries and the JSON of the result and audit blobs.</summary>
public static class ResultRecords
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
    };

    /// <summary>Why a defended result is flagged under the policy (<see cref="FlagReasons.None"/>: not flagged).</summary>
    public static FlagReasons Flags(TuningOutcome outcome, FlaggingPolicy policy)
    {
        var reasons = FlagReasons.None;
        if (policy.FlagChangedPrediction && outcome.Prediction != outcome.BaselinePrediction) reasons |= FlagReasons.ChangedPrediction;
        if (policy.FlagCloserToAttacked && outcome.Distances?.CloserToAttacked == true) reasons |= FlagReasons.CloserToAttacked;
        if (outcome.Confidence < policy.MinimumConfidence) reasons |= FlagReasons.LowConfidence;
        return reasons;
    }

    /// <summary>The summary kept in the job's state and listed in result pages.</summary>
    public static ImageResult Summarize(string name, TuningReply reply, JobDefinition job, DateTimeOffset now)
    {
        var index = reply.ImageIndex;
        if (reply is not TuningReply.Tuned { Outcome: var outcome })
            return new ImageResult(index, name, reply.Error, -1, null, 0, -1, -1, FlagReasons.None, [], now);
        var labels = job.Vocabulary.Labels;
        var top = outcome.Probabilities.Select((p, i) => new LabelProbability(i, labels[i].Label, p))
            .OrderByDescending(l => l.Probability).Take(5).ToImmutableArray();
        return new ImageResult(index, name, null, outcome.Prediction, labels[outcome.Prediction].Label, outcome.Confidence,
            outcome.BaselinePrediction, outcome.AptPrediction, Flags(outcome, job.Configuration.EffectiveFlagging), top, now);
    }

    public static BinaryData Serialize(ImageResultDetail detail) => BinaryData.FromObjectAsJson(detail, Json);

    public static ImageResultDetail Deserialize(BinaryData data) =>
        data.ToObjectFromJson<ImageResultDetail>(Json) ?? throw new InvalidDataException("empty result record");

    /// <summary>
    /// The audit record of a flagged image: what was asked (vocabulary version, configuration, seed), what ran
    /// (model checksum, artifact, settings), why it was flagged, and every tuned step's metrics.
    /// </summary>
    public static BinaryData AuditRecord(JobDefinition job, JobImageEntry image, int index, ImageResultDetail detail) =>
        BinaryData.FromObjectAsJson(new AuditRecord(
            "tapt-audit", 1, job.TenantId, job.JobId, index, image.Name, image.Format, image.Size, image.Sha256,
            job.Vocabulary, job.Configuration, job.Seed,
            detail.Summary.Flags.ToString().Split(", ", StringSplitOptions.RemoveEmptyEntries).ToImmutableArray(),
            detail.Summary, detail.Outcome, DateTimeOffset.UtcNow), Json);
}

/// <summary>The JSON document stored for each flagged image under <c>jobs/{jobId}/audit/</c>.</summary>
public sealed record AuditRecord(
    string Format,
    int FormatVersion,
    string TenantId,
    string JobId,
    int ImageIndex,
    string ImageName,
    string ImageFormat,
    long ImageBytes,
    string ImageSha256,
    VocabularyVersion Vocabulary,
    PromptConfiguration Configuration,
    int Seed,
    ImmutableArray<string> Reasons,
    ImageResult Result,
    TuningOutcome? Tuning,
    DateTimeOffset RecordedAt);
