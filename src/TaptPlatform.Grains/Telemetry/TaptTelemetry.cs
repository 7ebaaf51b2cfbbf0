using System.Diagnostics;
using System.Diagnostics.Metrics;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Telemetry;

/// <summary>
/// The names of the platform's meters and activity sources, and the activity sources themselves (activity sources
/// are process-wide by design; meters come from each host's <see cref="IMeterFactory"/>).
/// </summary>
public static class TaptTelemetry
{
    /// <summary>Job grains: images classified and flagged per tenant, job durations.</summary>
    public const string JobsName = "TaptPlatform.Jobs";

    /// <summary>The tuning engine: TAPT time per image, batch and step, queue depth.</summary>
    public const string TuningName = "TaptPlatform.Tuning";

    /// <summary>Every meter of the grains and the engine, with the ML core's caches (for an OpenTelemetry meter provider).</summary>
    public static readonly IReadOnlyList<string> MeterNames = [JobsName, TuningName, Vision.Caching.CacheMetrics.MeterName];

    /// <summary>Every activity source of the grains and the engine (for an OpenTelemetry tracer provider).</summary>
    public static readonly IReadOnlyList<string> SourceNames = [JobsName, TuningName];

    /// <summary>Spans of a job's stages: a dispatcher pass, each image, each recorded result.</summary>
    public static readonly ActivitySource Jobs = new(JobsName);

    /// <summary>Spans of the tuning engine: one per batch.</summary>
    public static readonly ActivitySource Tuning = new(TuningName);

    // Span attributes (span tags may carry job ids; metric tags never do).
    public const string TenantAttribute = "tapt.tenant";
    public const string JobAttribute = "tapt.job";
    public const string ImageAttribute = "tapt.image.index";
    public const string ImagesAttribute = "tapt.images";
    public const string ModelAttribute = "tapt.model";
    public const string DesignAttribute = "tapt.design";
    public const string OutcomeAttribute = "tapt.outcome";

    // Metric tags: low cardinality only (tenants are few and operator-created; no job or image ids).
    public const string TenantTag = "tenant";
    public const string ModelTag = "model";
    public const string DesignTag = "design";
    public const string OutcomeTag = "outcome";
    public const string StateTag = "state";
}

/// <summary>
/// Instruments of the job grains (meter <c>TaptPlatform.Jobs</c>). The flag rate of a tenant is
/// <c>tapt.jobs.images.flagged / tapt.jobs.images{outcome="succeeded"}</c>.
/// </summary>
public sealed class JobMetrics
{
    private readonly Counter<long> _images;
    private readonly Counter<long> _flagged;
    private readonly Histogram<double> _duration;

    public JobMetrics(IMeterFactory meters)
    {
        var m = meters.Create(TaptTelemetry.JobsName);
        _images = m.CreateCounter<long>("tapt.jobs.images", "{image}",
            "Images given a result by job grains (once per image), by tenant, model, design and outcome (succeeded, failed)");
        _flagged = m.CreateCounter<long>("tapt.jobs.images.flagged", "{image}",
            "Images flagged under the tenant's flagging policy, by tenant, model and design");
        _duration = m.CreateHistogram<double>("tapt.jobs.duration", "s",
            "Time from a job's start to its end, by tenant and final state (completed, cancelled)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400] });
    }

    /// <summary>One image's result was recorded.</summary>
    public void ImageRecorded(string tenantId, string model, string? design, ImageResult result)
    {
        var tags = new TagList
        {
            { TaptTelemetry.TenantTag, tenantId },
            { TaptTelemetry.ModelTag, model },
            { TaptTelemetry.DesignTag, DesignOf(design) },
        };
        if (result.Flagged) _flagged.Add(1, tags);
        tags.Add(TaptTelemetry.OutcomeTag, result.Succeeded ? "succeeded" : "failed");
        _images.Add(1, tags);
    }

    /// <summary>A job reached a final state (completed or cancelled).</summary>
    public void JobFinished(string tenantId, JobState state, DateTimeOffset? startedAt, DateTimeOffset finishedAt)
    {
        if (startedAt is not { } started) return;   // cancelled before it started: no run time
        _duration.Record(Math.Max(0, (finishedAt - started).TotalSeconds),
            new KeyValuePair<string, object?>(TaptTelemetry.TenantTag, tenantId),
            new KeyValuePair<string, object?>(TaptTelemetry.StateTag, state.ToString().ToLowerInvariant()));
    }

    /// <summary>The design tag: V, VLI or VLJ; "unknown" when no image was tuned and the configuration left it to the artifact.</summary>
    public static string DesignOf(string? design) => string.IsNullOrWhiteSpace(design) ? "unknown" : design.Trim().ToUpperInvariant();
}

/// <summary>Instruments of the tuning engine (meter <c>TaptPlatform.Tuning</c>).</summary>
public sealed class TuningMetrics : IDisposable
{
    private static readonly double[] MillisecondBuckets = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 60000, 120000, 300000];

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _images;
    private readonly Histogram<double> _imageDuration;
    private readonly Histogram<double> _batchDuration;
    private readonly Histogram<double> _stepDuration;
    private readonly Histogram<int> _batchSize;

    public TuningMetrics(IMeterFactory meters) : this(meters.Create(TaptTelemetry.TuningName), ownsMeter: false)
    {
    }

    /// <summary>An engine built without a host (tests, tools) gets a meter of its own, disposed with it.</summary>
    internal TuningMetrics() : this(new Meter(TaptTelemetry.TuningName), ownsMeter: true)
    {
    }

    private TuningMetrics(Meter meter, bool ownsMeter)
    {
        _meter = meter;
        _ownsMeter = ownsMeter;
        _images = meter.CreateCounter<long>("tapt.tuning.images", "{image}",
            "Images leaving the tuning engine, by tenant, model, design and outcome (tuned, rejected, cancelled, failed)");
        var ms = new InstrumentAdvice<double> { HistogramBucketBoundaries = MillisecondBuckets };
        _imageDuration = meter.CreateHistogram<double>("tapt.tuning.image.duration", "ms",
            "TAPT time of one image (its batch's tuning time divided by the images in it), by tenant, model and design", advice: ms);
        _batchDuration = meter.CreateHistogram<double>("tapt.tuning.batch.duration", "ms",
            "TAPT time of one batch (views, baseline, every step, prediction), by model and design", advice: ms);
        _stepDuration = meter.CreateHistogram<double>("tapt.tuning.step.duration", "ms",
            "Time of one TAPT step of a batch (the first also generates the views and the baseline), by model and design", advice: ms);
        _batchSize = meter.CreateHistogram<int>("tapt.tuning.batch.size", "{image}", "Images tuned together in one batch, by model and design",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
    }

    /// <summary>Publishes the engine's queue as observable gauges, read at each collection.</summary>
    public void ObserveQueue(Func<int> queued, Func<int> pending)
    {
        _meter.CreateObservableGauge("tapt.tuning.queue.depth", queued, "{image}",
            "Images waiting in the tuning engine's queue for a tuning thread (not yet in a batch)");
        _meter.CreateObservableGauge("tapt.tuning.pending", pending, "{image}",
            "Images accepted by the tuning engine and not finished (queued or being tuned)");
    }

    public void Image(string tenantId, string model, string design, string outcome) =>
        _images.Add(1, new TagList
        {
            { TaptTelemetry.TenantTag, tenantId },
            { TaptTelemetry.ModelTag, model },
            { TaptTelemetry.DesignTag, design },
            { TaptTelemetry.OutcomeTag, outcome },
        });

    public void ImageTuned(string tenantId, string model, string design, double milliseconds)
    {
        Image(tenantId, model, design, "tuned");
        _imageDuration.Record(milliseconds, new TagList
        {
            { TaptTelemetry.TenantTag, tenantId },
            { TaptTelemetry.ModelTag, model },
            { TaptTelemetry.DesignTag, design },
        });
    }

    public void Batch(string model, string design, int images, double milliseconds)
    {
        var tags = new TagList { { TaptTelemetry.ModelTag, model }, { TaptTelemetry.DesignTag, design } };
        _batchDuration.Record(milliseconds, tags);
        _batchSize.Record(images, tags);
    }

    public void Step(string model, string design, double milliseconds) =>
        _stepDuration.Record(milliseconds, new TagList { { TaptTelemetry.ModelTag, model }, { TaptTelemetry.DesignTag, design } });

    public void Dispose()
    {
        if (_ownsMeter) _meter.Dispose();
    }
}
