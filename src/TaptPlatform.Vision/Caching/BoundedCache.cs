namespace TaptPlatform.Vision.Caching;

/// <summary>What a cache reports about itself (for metrics and tests).</summary>
public interface ICacheStatistics
{
    string Name { get; }
    long MaxBytes { get; }
    int MaxEntries { get; }
    int Count { get; }
    long Bytes { get; }
    long Evictions { get; }
}

/// <summary>
/// A thread-safe least-recently-used cache bounded by the bytes its entries report and by an entry count. Values
/// are leased: <see cref="Rent"/> hands out a <see cref="Lease"/> that must be disposed when the caller is done.
/// An evicted value that is <see cref="IDisposable"/> is disposed once it is evicted and no lease holds it.
/// </summary>
public sealed class BoundedCache<TKey, TValue> : ICacheStatistics, IDisposable
    where TKey : notnull
    where TValue : class
{
    // Leases, not dispose-on-evict: another tuning thread's insert may evict a value this thread is still reading.
    private readonly Dictionary<TKey, LinkedListNode<Entry>> _map;
    private readonly LinkedList<Entry> _recency = new();      // most recently used first
    private readonly Func<TValue, long> _sizeOf;
    private readonly CacheMetrics _metrics;
    private readonly Lock _gate = new();
    private long _bytes, _evictions;
    private bool _disposed;

    public BoundedCache(string name, long maxBytes, Func<TValue, long> sizeOf, int maxEntries = int.MaxValue,
        IEqualityComparer<TKey>? comparer = null, CacheMetrics? metrics = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxEntries);
        Name = name;
        MaxBytes = maxBytes;
        MaxEntries = maxEntries;
        _sizeOf = sizeOf;
        _map = new Dictionary<TKey, LinkedListNode<Entry>>(comparer);
        _metrics = metrics ?? CacheMetrics.Shared;
        _metrics.Register(this);
    }

    public string Name { get; }
    public long MaxBytes { get; }
    public int MaxEntries { get; }

    public int Count
    {
        get { lock (_gate) return _map.Count; }
    }

    public long Bytes => Interlocked.Read(ref _bytes);
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Leases the cached value, if there is one, and marks it most recently used.</summary>
    public bool TryRent(TKey key, out Lease lease)
    {
        lock (_gate)
        {
            if (_map.TryGetValue(key, out var node))
            {
                lease = RentLocked(node);
                return true;
            }
        }
        lease = null!;
        return false;
    }

    /// <summary>
    /// Leases the cached value or creates, caches and leases one. <paramref name="create"/> runs outside the cache's
    /// lock (two threads may both create; the loser's value is disposed). A value larger than the byte bound is
    /// leased without being cached.
    /// </summary>
    public Lease Rent(TKey key, Func<TKey, TValue> create)
    {
        if (TryRent(key, out var lease)) return lease;
        var value = create(key);
        var size = Math.Max(0, _sizeOf(value));
        List<Entry> released = [];
        var evicted = 0;
        TValue? discarded = null;
        try
        {
            lock (_gate)
            {
                if (_map.TryGetValue(key, out var existing))
                {
                    discarded = value;
                    return RentLocked(existing);
                }
                var entry = new Entry(key, value, size) { Rents = 1 };
                if (_disposed || size > MaxBytes)
                {
                    entry.Evicted = true;
                    return new Lease(this, entry);
                }
                evicted = MakeRoomLocked(size, released);
                _map[key] = _recency.AddFirst(entry);
                Interlocked.Add(ref _bytes, size);
                return new Lease(this, entry);
            }
        }
        finally
        {
            if (discarded is not null) Release(discarded);
            foreach (var e in released) Release(e.Value);
            if (evicted > 0) _metrics.Evicted(Name, evicted);
        }
    }

    private Lease RentLocked(LinkedListNode<Entry> node)
    {
        _recency.Remove(node);
        _recency.AddFirst(node);
        node.Value.Rents++;
        return new Lease(this, node.Value);
    }

    /// <summary>Drops least recently used entries until one of <paramref name="size"/> fits; collects those no lease holds.</summary>
    private int MakeRoomLocked(long size, List<Entry> released)
    {
        var evicted = 0;
        while (_recency.Count > 0 && (Interlocked.Read(ref _bytes) + size > MaxBytes || _map.Count + 1 > MaxEntries))
        {
            var victim = _recency.Last!.Value;
            Remove(victim);
            Interlocked.Increment(ref _evictions);
            evicted++;
            if (victim.Rents == 0) released.Add(victim);
        }
        return evicted;
    }

    private void Remove(Entry entry)
    {
        _recency.Remove(_map[entry.Key]);
        _map.Remove(entry.Key);
        Interlocked.Add(ref _bytes, -entry.Size);
        entry.Evicted = true;
    }

    private void Return(Entry entry)
    {
        bool release;
        lock (_gate)
        {
            entry.Rents--;
            release = entry.Evicted && entry.Rents == 0;
        }
        if (release) Release(entry.Value);
    }

    private static void Release(TValue value) => (value as IDisposable)?.Dispose();

    /// <summary>Empties the cache (values still leased are disposed when their last lease ends) and stops reporting it.</summary>
    public void Dispose()
    {
        List<Entry> released = [];
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var node in _map.Values.ToList())
            {
                Remove(node.Value);
                if (node.Value.Rents == 0) released.Add(node.Value);
            }
        }
        foreach (var e in released) Release(e.Value);
        _metrics.Unregister(this);
    }

    internal sealed class Entry(TKey key, TValue value, long size)
    {
        public TKey Key { get; } = key;
        public TValue Value { get; } = value;
        public long Size { get; } = size;
        public int Rents { get; set; }
        public bool Evicted { get; set; }
    }

    /// <summary>A hold on a cached value: the value is not disposed before the lease is (disposing twice is harmless).</summary>
    public sealed class Lease : IDisposable
    {
        private readonly BoundedCache<TKey, TValue> _cache;
        private readonly Entry _entry;
        private int _returned;

        internal Lease(BoundedCache<TKey, TValue> cache, Entry entry)
        {
            _cache = cache;
            _entry = entry;
        }

        public TValue Value => Volatile.Read(ref _returned) == 0 ? _entry.Value : throw new ObjectDisposedException(nameof(Lease));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0) _cache.Return(_entry);
        }
    }
}
