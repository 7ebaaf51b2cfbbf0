using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Api;

// ---- requests ---------------------------------------------------------------------------------------------

/// <summary>An operator creates a tenant and gets its first key.</summary>
public sealed record CreateTenantRequest(string? Id, string? KeyName);

public sealed record CreateKeyRequest(string? Name);

/// <summary>A vocabulary (version). Labels are strings, or objects <c>{"label": "...", "promptText": "..."}</c>.</summary>
public sealed record VocabularyRequest(string? Name, List<LabelEntry>? Labels, string? Template);

/// <summary>A prompt configuration (version); unset test-time settings use the prompt artifact's own.</summary>
public sealed record PromptConfigurationRequest(
    string? Name,
    string? Model,
    string? PromptArtifact,
    string? Design,
    int? Views,
    int? Steps,
    double? LearningRate,
    FlaggingPolicy? Flagging,
    int? PromptArtifactVersion = null);

/// <summary>A job against a vocabulary (its latest version unless pinned) and a prompt configuration (its latest version).</summary>
public sealed record CreateJobRequest(string? Vocabulary, string? PromptConfiguration, int? VocabularyVersion, int? Seed, string? Name);

// ---- responses --------------------------------------------------------------------------------------------

public sealed record TenantCreated(string TenantId, ApiKeyIssued Key);

public sealed record KeyRotated(ApiKeyIssued Key, string RevokedKeyId);

public sealed record UsageView(TenantUsage Usage, int ImagesPerDay, int MaxConcurrentJobs, int RequestsPerSecond);

/// <summary>A job as the API shows it: its status plus throughput (images per second) and estimated seconds left.</summary>
public sealed record JobView(
    string JobId,
    string? Name,
    JobState State,
    JobCounts Counts,
    string Vocabulary,
    int VocabularyVersion,
    string PromptConfiguration,
    int PromptConfigurationVersion,
    string Model,
    int Seed,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    string? Waiting,
    double? ThroughputPerSecond,
    double? EtaSeconds)
{
    public static JobView From(JobStatus s, DateTimeOffset now, double? throughput = null)
    {
        var p = Live.ProgressEstimate.Of(s.State, s.Counts.Completed, s.Counts.Remaining, s.StartedAt, s.FinishedAt, now, throughput);
        return new JobView(s.JobId, s.Name, s.State, s.Counts, s.Vocabulary, s.VocabularyVersion, s.PromptConfiguration,
            s.PromptConfigurationVersion, s.Model, s.Seed, s.CreatedAt, s.StartedAt, s.FinishedAt, s.Waiting,
            p.ThroughputPerSecond, p.EtaSeconds);
    }
}

/// <summary>One image's result with its labels spelled out: TAPT's (defended), plain CLIP's (baseline) and APT's.</summary>
public sealed record ResultView(
    int Index,
    string Name,
    string? Error,
    int Prediction,
    string? Label,
    float Confidence,
    int BaselinePrediction,
    string? BaselineLabel,
    int AptPrediction,
    string? AptLabel,
    bool Flagged,
    ImmutableArray<string> Reasons,
    ImmutableArray<LabelProbability> TopK,
    DateTimeOffset CompletedAt)
{
    public static ResultView From(ImageResult r, IReadOnlyList<string>? labels) => new(
        r.Index, r.Name, r.Error, r.Prediction, r.Label, r.Confidence,
        r.BaselinePrediction, LabelOf(labels, r.BaselinePrediction), r.AptPrediction, LabelOf(labels, r.AptPrediction),
        r.Flagged, ReasonNames(r.Flags), r.TopK.IsDefault ? [] : r.TopK, r.CompletedAt);

    private static string? LabelOf(IReadOnlyList<string>? labels, int i) => labels is not null && i >= 0 && i < labels.Count ? labels[i] : null;

    /// <summary>The flag reasons as camel-case names (<c>changedPrediction</c>, <c>closerToAttacked</c>, <c>lowConfidence</c>).</summary>
    public static ImmutableArray<string> ReasonNames(FlagReasons flags) =>
        Enum.GetValues<FlagReasons>().Where(f => f != FlagReasons.None && flags.HasFlag(f)).Select(f => JsonNamingPolicy.CamelCase.ConvertName(f.ToString())).ToImmutableArray();

    public static bool TryParseReason(string? name, out FlagReasons reason)
    {
        reason = FlagReasons.None;
        return name is not null && Enum.TryParse(name, ignoreCase: true, out reason) && reason != FlagReasons.None && Enum.IsDefined(reason);
    }
}

public sealed record ResultPageView(ImmutableArray<ResultView> Items, int Offset, int TotalResults, int? NextOffset);

public sealed record AcceptedImage(int Index, string Name);

public sealed record UploadReceipt(string JobId, ImmutableArray<AcceptedImage> Accepted, ImmutableArray<RejectedImage> Rejected, int TotalImages);

/// <summary>A flagged image in the audit list, with its current verdict (null: unreviewed).</summary>
public sealed record AuditItem(string JobId, string? JobName, ResultView Result, string ImageUrl, string RecordUrl, Grains.Storage.ReviewSummary? Review = null);

/// <summary>A page of the audit list; <c>verdicts</c> counts every image matching the other filters by current verdict (<c>unreviewed</c> included).</summary>
public sealed record AuditPage(ImmutableArray<AuditItem> Items, int JobsScanned, bool Truncated, ImmutableDictionary<string, int>? Verdicts = null);

/// <summary>One flagged image's audit record (the stored JSON, with every tuned step's metrics) and where its artifacts are.</summary>
public sealed record AuditRecordView(string JobId, int Index, string ImageUrl, string DownloadUrl, ImmutableArray<ArtifactInfo> Artifacts, JsonElement Record);

// ---- JSON -------------------------------------------------------------------------------------------------

/// <summary>Reads a label as a plain string or as <c>{"label", "promptText"}</c>; writes the object form.</summary>
public sealed class LabelEntryConverter : JsonConverter<LabelEntry>
{
    public override LabelEntry? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String) return new LabelEntry(reader.GetString()!);
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("a label is a string or an object {\"label\", \"promptText\"}");
        string? label = null, prompt = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            if (reader.TokenType != JsonTokenType.PropertyName) throw new JsonException("unexpected token in a label");
            var name = reader.GetString();
            reader.Read();
            if (string.Equals(name, "label", StringComparison.OrdinalIgnoreCase)) label = reader.TokenType == JsonTokenType.Null ? null : reader.GetString();
            else if (string.Equals(name, "promptText", StringComparison.OrdinalIgnoreCase)) prompt = reader.TokenType == JsonTokenType.Null ? null : reader.GetString();
            else reader.Skip();
        }
        return new LabelEntry(label ?? throw new JsonException("a label object needs \"label\""), prompt);
    }

    public override void Write(Utf8JsonWriter writer, LabelEntry value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("label", value.Label);
        if (value.PromptText is not null) writer.WriteString("promptText", value.PromptText);
        writer.WriteEndObject();
    }
}

public static class GatewayJson
{
    /// <summary>The API's JSON conventions (also SignalR's): camel case, enums as camel-case strings, NaN allowed.</summary>
    public static void Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        o.NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals;
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        o.Converters.Add(new LabelEntryConverter());
        o.MaxDepth = 32;
    }
}
