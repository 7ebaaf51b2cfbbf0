using System.Collections.Immutable;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>A verdict on a flagged image; <c>expectedRevision</c> (the revision the reviewer saw, 0 when unreviewed) refuses a change made meanwhile (409).</summary>
public sealed record ReviewRequest(string? Verdict, string? Note, int? ExpectedRevision);

/// <summary>A flagged image's current verdict (null: unreviewed) and every verdict recorded on it, oldest first.</summary>
public sealed record ReviewView(string JobId, int Index, ReviewEntry? Current, ImmutableArray<ReviewEntry> History);

/// <summary>One page of the trail, newest first; <c>nextCursor</c> continues it.</summary>
public sealed record TrailPage(ImmutableArray<TrailEntry> Items, string? NextCursor);

/// <summary>Flag rates and verdict mixes by UTC day, one series per prompt configuration and vocabulary.</summary>
public sealed record FlagTrends(DateTimeOffset Since, DateTimeOffset Until, int JobsScanned, bool Truncated, ImmutableArray<TrendSeries> Series);

/// <summary>
/// One prompt configuration with one vocabulary (the versions its jobs used): a bucket for every day of the range,
/// and the range's total.
/// </summary>
public sealed record TrendSeries(string PromptConfiguration, string Vocabulary, ImmutableArray<int> ConfigurationVersions,
    ImmutableArray<int> VocabularyVersions, ImmutableArray<TrendDay> Days, TrendDay Total);

/// <summary>
/// A day's images with a result, how many were flagged (and their rate), how many had their prediction changed by
/// tuning (and that rate), and the flagged images by current verdict (<c>unreviewed</c> included).
/// </summary>
public sealed record TrendDay(string Day, int Images, int Flagged, double FlagRate, int ChangedPredictions, double ChangedPredictionRate,
    ImmutableDictionary<string, int> Verdicts);
