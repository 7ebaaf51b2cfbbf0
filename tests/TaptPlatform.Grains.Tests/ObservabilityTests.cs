using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class ObservabilityTests(PlatformFixture platform)
{
    private static readonly ActivitySource TestSource = new("TaptPlatform.Tests");

    [Fact]
    public async Task Processing_jobs_records_images_flags_tuning_time_and_durations_under_each_tenant_and_one_trace_per_job()
    {
        var cluster = await platform.ClusterAsync();
        using var metrics = new MetricRecorder(m => TaptTelemetry.MeterNames.Contains(m.Name));
        using var spans = new SpanRecorder(TaptTelemetry.SourceNames.Append(TestSource.Name).Append("Microsoft.Orleans.Application"));

        // Tenant "all": every image is flagged (no confidence reaches 1). Tenant "some": only what its policy flags.
        var all = PlatformFixture.NewTenant("obs-all");
        var some = PlatformFixture.NewTenant("obs-some");
        var (allJob, allTrace) = await RunJobAsync(cluster, all, images: 5, minimumConfidence: 1.0);
        var (someJob, _) = await RunJobAsync(cluster, some, images: 3, minimumConfidence: 0.0);
        Assert.Equal(5, allJob.Counts.Flagged);
        // A job reads as completed a moment before its dispatcher records the duration and ends its span.
        await JobTests.WaitUntil(() => metrics.Values("tapt.jobs.duration", some).Count == 1
            && spans.All.Count(a => a.OperationName == "tapt.job.dispatch" && (string?)a.GetTagItem(TaptTelemetry.TenantAttribute) is { } t && (t == all || t == some)) == 2,
            TimeSpan.FromSeconds(10));

        foreach (var (tenant, job) in new[] { (all, allJob), (some, someJob) })
        {
            Assert.Equal(job.Counts.Total, metrics.Sum("tapt.jobs.images", tenant, ("outcome", "succeeded"), ("model", TestModels.Tiny), ("design", "VLI")));
            Assert.Equal(0, metrics.Sum("tapt.jobs.images", tenant, ("outcome", "failed")));
            Assert.Equal(job.Counts.Flagged, metrics.Sum("tapt.jobs.images.flagged", tenant));
            Assert.Equal(job.Counts.Total, metrics.Sum("tapt.tuning.images", tenant, ("outcome", "tuned")));
            var tuning = metrics.Values("tapt.tuning.image.duration", tenant);
            Assert.Equal(job.Counts.Total, tuning.Count);
            Assert.All(tuning, ms => Assert.True(ms > 0, "a tuning time of zero"));
            var duration = Assert.Single(metrics.Values("tapt.jobs.duration", tenant, ("state", "completed")));
            Assert.InRange(duration, 0, (job.FinishedAt!.Value - job.StartedAt!.Value).TotalSeconds + 1e-6);
        }
        // Batch-level instruments carry no tenant; they saw at least these images.
        Assert.True(metrics.Values("tapt.tuning.batch.size", tenant: null).Sum() >= 8);
        Assert.NotEmpty(metrics.Values("tapt.tuning.batch.duration", tenant: null));

        // One trace from the caller's span through the job grain's dispatcher and the model grain to the engine's batches.
        var trace = spans.InTrace(allTrace);
        Assert.Single(trace, a => a.OperationName == "tapt.job.dispatch" && (string?)a.GetTagItem(TaptTelemetry.JobAttribute) == allJob.JobId);
        var images = trace.Where(a => a.OperationName == "tapt.job.image").ToList();
        Assert.Equal(Enumerable.Range(0, 5), images.Select(a => (int)a.GetTagItem(TaptTelemetry.ImageAttribute)!).Order());
        Assert.All(images, a => Assert.Equal(all, a.GetTagItem(TaptTelemetry.TenantAttribute)));
        var batches = trace.Where(a => a.OperationName == "tapt.tuning.batch").ToList();
        Assert.NotEmpty(batches);
        Assert.All(batches, b =>
        {
            Assert.Equal(all, b.GetTagItem(TaptTelemetry.TenantAttribute));
            Assert.Equal("VLI", b.GetTagItem(TaptTelemetry.DesignAttribute));
        });
        Assert.Equal(5, batches.Sum(b => (int)b.GetTagItem(TaptTelemetry.ImagesAttribute)!));
        Assert.DoesNotContain(spans.InTrace(allTrace), a => (string?)a.GetTagItem(TaptTelemetry.TenantAttribute) == some);
    }

    private static async Task<(JobStatus Status, ActivityTraceId Trace)> RunJobAsync(TaptCluster cluster, string tenantId, int images, double minimumConfidence)
    {
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, minimumConfidence: minimumConfidence);
        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: 1))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(0, images)));
        ActivityTraceId trace;
        using (var root = TestSource.StartActivity("test: start job"))
        {
            Assert.NotNull(root);
            trace = root.TraceId;
            await job.StartAsync(tenantId);
        }
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(images, done.Counts.Completed);
        return (done, trace);
    }

    /// <summary>Every measurement of the selected meters' instruments, with its tags.</summary>
    internal sealed class MetricRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)> _measurements = new();

        public MetricRecorder(Func<Meter, bool> meters)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (meters(instrument.Meter)) listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
            _listener.Start();
        }

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var d = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var t in tags) d[t.Key] = t.Value;
            _measurements.Enqueue((instrument.Name, value, d));
        }

        /// <summary>Observable instruments report only when asked.</summary>
        public void Observe() => _listener.RecordObservableInstruments();

        /// <summary>The values of an instrument with this tenant tag (null: with no tenant tag) and these tags.</summary>
        public List<double> Values(string instrument, string? tenant, params (string Key, string Value)[] tags) =>
            _measurements.Where(m => m.Instrument == instrument
                    && (tenant is null ? !m.Tags.ContainsKey(TaptTelemetry.TenantTag) : Equals(m.Tags.GetValueOrDefault(TaptTelemetry.TenantTag), tenant))
                    && tags.All(t => Equals(m.Tags.GetValueOrDefault(t.Key), t.Value)))
                .Select(m => m.Value).ToList();

        public long Sum(string instrument, string tenant, params (string Key, string Value)[] tags) => (long)Values(instrument, tenant, tags).Sum();

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Every finished span of the selected sources.</summary>
    internal sealed class SpanRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _spans = new();

        public SpanRecorder(IEnumerable<string> sources)
        {
            var names = sources.ToHashSet(StringComparer.Ordinal);
            _listener = new ActivityListener
            {
                ShouldListenTo = s => names.Contains(s.Name),
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = _spans.Enqueue,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public IReadOnlyList<Activity> All => [.. _spans];

        public List<Activity> InTrace(ActivityTraceId trace) => _spans.Where(a => a.TraceId == trace).ToList();

        public void Dispose() => _listener.Dispose();
    }
}
