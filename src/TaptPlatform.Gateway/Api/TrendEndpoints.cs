using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Globalization;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// Flag trends: per prompt configuration and vocabulary, each UTC day's flag rate, changed-prediction rate and verdict
/// mix over the tenant's newest jobs. A sudden rise in changed predictions is what a tenant under attack sees first.
/// </summary>
public static class TrendEndpoints
{
    internal static async Task<Results<Ok<FlagTrends>, ProblemHttpResult>> Trends(HttpContext c, IGrainFactory g, ReviewStore reviews, TimeProvider clock,
        DateTimeOffset? since, DateTimeOffset? until, string? configuration, string? vocabulary)
    {
        if (TenantResults.Range(since, until, clock.GetUtcNow()) is not { } range) return Problems.Invalid("since/until: a range of at most 366 days, since before until");
        if (configuration is not null && !Identifiers.IsValidName(configuration)) return Problems.Invalid("configuration: a prompt configuration's name");
        if (vocabulary is not null && !Identifiers.IsValidName(vocabulary)) return Problems.Invalid("vocabulary: a vocabulary's name");
        var tenantId = c.User.TenantId();
        var current = await reviews.CurrentAsync(tenantId, ct: c.RequestAborted);
        var series = new Dictionary<(string Configuration, string Vocabulary), SeriesBuilder>();
        var scanned = 0;
        await foreach (var job in TenantResults.JobsAsync(g, tenantId, null, c.RequestAborted))
        {
            scanned++;
            if (configuration is not null && job.PromptConfiguration != configuration || vocabulary is not null && job.Vocabulary != vocabulary) continue;
            if (job.CreatedAt > range.Until || job.FinishedAt < range.Since || job.Counts.Completed == 0) continue;
            var key = (job.PromptConfiguration, job.Vocabulary);
            if (!series.TryGetValue(key, out var builder)) series[key] = builder = new SeriesBuilder(range.Since, range.Until);
            builder.ConfigurationVersions.Add(job.PromptConfigurationVersion);
            builder.VocabularyVersions.Add(job.VocabularyVersion);
            await foreach (var r in TenantResults.ResultsAsync(g, tenantId, job.JobId, c.RequestAborted))
                if (r.Error is null && r.CompletedAt >= range.Since && r.CompletedAt <= range.Until)
                    builder.Add(r, r.Flagged ? current.GetValueOrDefault((job.JobId, r.Index))?.Verdict ?? Verdicts.Unreviewed : null);
        }
        var list = series.OrderBy(s => s.Key.Configuration, StringComparer.Ordinal).ThenBy(s => s.Key.Vocabulary, StringComparer.Ordinal)
            .Select(s => s.Value.Build(s.Key.Configuration, s.Key.Vocabulary)).ToImmutableArray();
        return TypedResults.Ok(new FlagTrends(range.Since, range.Until, scanned, scanned >= TenantResults.MaxJobsScanned, list));
    }

    /// <summary>Counts per UTC day of the range.</summary>
    private sealed class SeriesBuilder(DateTimeOffset since, DateTimeOffset until)
    {
        private readonly DateOnly _first = DateOnly.FromDateTime(since.UtcDateTime);
        private readonly Counts?[] _days = new Counts?[DateOnly.FromDateTime(until.UtcDateTime).DayNumber - DateOnly.FromDateTime(since.UtcDateTime).DayNumber + 1];
        public SortedSet<int> ConfigurationVersions { get; } = [];
        public SortedSet<int> VocabularyVersions { get; } = [];

        public void Add(ImageResult r, string? verdict)
        {
            var day = DateOnly.FromDateTime(r.CompletedAt.UtcDateTime).DayNumber - _first.DayNumber;
            if (day < 0 || day >= _days.Length) return;
            (_days[day] ??= new Counts()).Add(r, verdict);
        }

        public TrendSeries Build(string configuration, string vocabulary)
        {
            var total = new Counts();
            var days = _days.Select((d, i) =>
            {
                d ??= new Counts();
                total.Merge(d);
                return d.ToDay(_first.AddDays(i));
            }).ToImmutableArray();
            return new TrendSeries(configuration, vocabulary, [.. ConfigurationVersions], [.. VocabularyVersions], days, total.ToDay(null));
        }
    }

    private sealed class Counts
    {
        private int _images, _flagged, _changed;
        private readonly Dictionary<string, int> _verdicts = new[] { Verdicts.Unreviewed }.Concat(Verdicts.All).ToDictionary(v => v, _ => 0);

        public void Add(ImageResult r, string? verdict)
        {
            _images++;
            if (r.Prediction != r.BaselinePrediction) _changed++;
            if (verdict is null) return;
            _flagged++;
            _verdicts[verdict]++;
        }

        public void Merge(Counts other)
        {
            _images += other._images;
            _flagged += other._flagged;
            _changed += other._changed;
            foreach (var (k, v) in other._verdicts) _verdicts[k] += v;
        }

        public TrendDay ToDay(DateOnly? day) => new(
            day?.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) ?? "total", _images, _flagged, Rate(_flagged, _images), _changed, Rate(_changed, _images),
            _verdicts.ToImmutableDictionary());

        private static double Rate(int n, int of) => of == 0 ? 0 : Math.Round((double)n / of, 4);
    }
}
