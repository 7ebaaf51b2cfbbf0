using System.Diagnostics.Metrics;

namespace TaptPlatform.Vision.Caching;

/// <summary>
/// Instruments of the bounded caches (meter <c>TaptPlatform.Vision</c>): entries and bytes as observable gauges and
/// evictions as a counter, each tagged with the cache's name (caches sharing a name are summed).
/// </summary>
public sealed class CacheMetrics
{
    public const string MeterName = "TaptPlatform.Vision";
    public const string CacheTag = "cache";

    // Caches are held weakly: an undisposed cache (say, of a model nobody disposes) must not be kept alive by its gauges.
    private readonly List<WeakReference<ICacheStatistics>> _caches = [];
    private readonly Lock _gate = new();
    private readonly Counter<long> _evictions;

    /// <summary>The process-wide instruments every cache reports to unless it is given others.</summary>
    public static CacheMetrics Shared { get; } = new(new Meter(MeterName));

    public CacheMetrics(Meter meter)
    {
        meter.CreateObservableGauge("tapt.vision.cache.entries", () => Observe(c => c.Count), "{entry}",
            "Entries held by a bounded cache, by cache");
        meter.CreateObservableGauge("tapt.vision.cache.bytes", () => Observe(c => c.Bytes), "By",
            "Bytes the entries of a bounded cache report (device memory for tensors), by cache");
        _evictions = meter.CreateCounter<long>("tapt.vision.cache.evictions", "{entry}",
            "Entries a bounded cache dropped to stay within its bounds, by cache");
    }

    internal void Register(ICacheStatistics cache)
    {
        lock (_gate)
        {
            _caches.RemoveAll(w => !w.TryGetTarget(out _));
            _caches.Add(new WeakReference<ICacheStatistics>(cache));
        }
    }

    internal void Unregister(ICacheStatistics cache)
    {
        lock (_gate) _caches.RemoveAll(w => !w.TryGetTarget(out var c) || ReferenceEquals(c, cache));
    }

    internal void Evicted(string cache, long entries) => _evictions.Add(entries, new KeyValuePair<string, object?>(CacheTag, cache));

    private List<Measurement<long>> Observe(Func<ICacheStatistics, long> value)
    {
        List<ICacheStatistics> live = [];
        lock (_gate)
        {
            foreach (var w in _caches)
                if (w.TryGetTarget(out var c)) live.Add(c);
        }
        return live.GroupBy(c => c.Name, StringComparer.Ordinal)
            .Select(g => new Measurement<long>(g.Sum(value), new KeyValuePair<string, object?>(CacheTag, g.Key)))
            .ToList();
    }
}
