using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using TaptPlatform.Vision.Caching;

namespace TaptPlatform.Vision.Tests.Caching;

public sealed class BoundedCacheTests
{
    private sealed class Probe(string key, long size) : IDisposable
    {
        private int _disposals;
        public string Key { get; } = key;
        public long Size { get; } = size;
        public int Disposals => Volatile.Read(ref _disposals);
        public void Dispose() => Interlocked.Increment(ref _disposals);
    }

    private static BoundedCache<string, Probe> Cache(long maxBytes, int maxEntries = int.MaxValue, CacheMetrics? metrics = null) =>
        new("test", maxBytes, p => p.Size, maxEntries, StringComparer.Ordinal, metrics);

    private static Probe Put(BoundedCache<string, Probe> cache, string key, long size)
    {
        using var lease = cache.Rent(key, k => new Probe(k, size));
        return lease.Value;
    }

    [Fact]
    public void It_stays_under_its_byte_bound_and_disposes_what_it_evicts()
    {
        using var cache = Cache(maxBytes: 100);
        var probes = Enumerable.Range(0, 20).Select(i =>
        {
            var p = Put(cache, $"k{i}", 30);
            Assert.InRange(cache.Bytes, 0, 100);
            return p;
        }).ToList();

        Assert.Equal(3, cache.Count);
        Assert.Equal(90, cache.Bytes);
        Assert.All(probes[..17], p => Assert.Equal(1, p.Disposals));
        Assert.All(probes[17..], p => Assert.Equal(0, p.Disposals));
    }

    [Fact]
    public void It_evicts_the_least_recently_used_entry()
    {
        using var cache = Cache(maxBytes: 1000, maxEntries: 3);
        var a = Put(cache, "a", 1);
        var b = Put(cache, "b", 1);
        Put(cache, "c", 1);
        Assert.True(cache.TryRent("a", out var lease));     // a is now more recent than b
        lease.Dispose();
        Put(cache, "d", 1);

        Assert.False(cache.TryRent("b", out _));
        Assert.Equal(1, b.Disposals);
        foreach (var key in new[] { "a", "c", "d" })
        {
            Assert.True(cache.TryRent(key, out var l));
            l.Dispose();
        }
        Assert.Equal(0, a.Disposals);
    }

    [Fact]
    public void It_counts_evictions_and_reports_entries_and_bytes_on_its_meter()
    {
        using var meter = new Meter(CacheMetrics.MeterName);
        var metrics = new CacheMetrics(meter);
        var evictions = 0L;
        var gauges = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter)) l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            Assert.Contains(tags.ToArray(), t => t.Key == CacheMetrics.CacheTag && (string?)t.Value == "test");
            if (instrument.Name == "tapt.vision.cache.evictions") Interlocked.Add(ref evictions, value);
            else gauges[instrument.Name] = value;
        });
        listener.Start();
        using var cache = Cache(maxBytes: 10, maxEntries: 2, metrics: metrics);

        using (cache.Rent("held", k => new Probe(k, 4)))          // evicted while rented: counted all the same
            for (var i = 0; i < 7; i++) Put(cache, $"k{i}", 4);
        listener.RecordObservableInstruments();

        Assert.Equal(6, cache.Evictions);
        Assert.Equal(6, Interlocked.Read(ref evictions));
        Assert.Equal(2, gauges["tapt.vision.cache.entries"]);
        Assert.Equal(8, gauges["tapt.vision.cache.bytes"]);
    }

    [Fact]
    public void A_value_evicted_while_rented_is_disposed_only_when_it_is_returned()
    {
        using var cache = Cache(maxBytes: 10);
        var lease = cache.Rent("held", k => new Probe(k, 6));
        var held = lease.Value;

        Put(cache, "newer", 6);                               // evicts "held" while it is rented
        Assert.False(cache.TryRent("held", out _));
        Assert.Equal(1, cache.Evictions);
        Assert.Equal(0, held.Disposals);

        lease.Dispose();
        Assert.Equal(1, held.Disposals);
        lease.Dispose();                                      // a second return changes nothing
        Assert.Equal(1, held.Disposals);
    }

    [Fact]
    public void A_value_larger_than_the_bound_is_leased_but_not_cached()
    {
        using var cache = Cache(maxBytes: 10);
        var kept = Put(cache, "kept", 5);
        var lease = cache.Rent("huge", k => new Probe(k, 11));
        var huge = lease.Value;
        Assert.Equal(1, cache.Count);
        Assert.Equal(0, huge.Disposals);
        lease.Dispose();
        Assert.Equal(1, huge.Disposals);
        Assert.Equal(0, kept.Disposals);
    }

    [Fact]
    public void Concurrent_renters_never_see_a_disposed_value_and_every_value_is_disposed_once()
    {
        var created = new ConcurrentBag<Probe>();
        var cache = Cache(maxBytes: 40, maxEntries: 6);
        var violations = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            var random = new Random(worker);
            for (var i = 0; i < 5_000; i++)
            {
                var key = $"k{random.Next(20)}";
                using var lease = cache.Rent(key, k =>
                {
                    var p = new Probe(k, 1 + random.Next(10));
                    created.Add(p);
                    return p;
                });
                if (lease.Value.Key != key || lease.Value.Disposals != 0) Interlocked.Increment(ref violations);
                Thread.SpinWait(random.Next(50));
                if (lease.Value.Disposals != 0) Interlocked.Increment(ref violations);
                if (cache.Bytes > 40 || cache.Count > 6) Interlocked.Increment(ref violations);
            }
        });
        Assert.Equal(0, violations);
        Assert.True(cache.Evictions > 0);
        Assert.InRange(created.Count(p => p.Disposals == 0), 1, 6);   // only what is still cached

        cache.Dispose();
        Assert.All(created, p => Assert.Equal(1, p.Disposals));
        Assert.Equal(0, cache.Count);
    }
}
