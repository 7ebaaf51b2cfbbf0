using System.Security.Cryptography;

namespace TaptPlatform.Vision.Caching;

/// <summary>
/// Files fetched from elsewhere (blob storage) kept on local disk, named by the SHA-256 of their content, least
/// recently used dropped past <see cref="MaxBytes"/>. A file is only ever used with the checksum it was asked for:
/// a download is hashed as it is written and refused (nothing kept) when it differs, and a file found on disk from an
/// earlier run is hashed again on its first use. Files are leased: one in use is never deleted under its reader.
/// Concurrent requests for one checksum share one download. Nothing here knows what the files are (prompt artifacts,
/// model files), only their checksums.
/// </summary>
public sealed class LocalFileCache : ICacheStatistics, IDisposable
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new();      // most recently used first
    private readonly Dictionary<string, Task> _downloads = new(StringComparer.Ordinal);
    private readonly CacheMetrics _metrics;
    private readonly Lock _gate = new();
    private long _bytes, _evictions;

    public LocalFileCache(string name, string directory, long maxBytes, CacheMetrics? metrics = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        Name = name;
        Directory = System.IO.Directory.CreateDirectory(directory).FullName;
        MaxBytes = maxBytes;
        _metrics = metrics ?? CacheMetrics.Shared;
        Adopt();
        _metrics.Register(this);
    }

    public string Name { get; }
    public string Directory { get; }
    public long MaxBytes { get; }
    public int MaxEntries => int.MaxValue;

    public int Count
    {
        get { lock (_gate) return _entries.Count; }
    }

    public long Bytes => Interlocked.Read(ref _bytes);
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>True for 64 lower-case hex digits (the only names this cache gives files).</summary>
    public static bool IsChecksum(string? s) => s is { Length: 64 } && s.All(char.IsAsciiHexDigitLower);

    /// <summary>
    /// A lease on the local file with content <paramref name="sha256"/>: kept, or written by <paramref name="download"/>
    /// (which writes the whole content to the stream it is given) and checked. <see cref="InvalidDataException"/> when
    /// the downloaded content has another checksum.
    /// </summary>
    public async Task<Lease> GetAsync(string sha256, Func<Stream, CancellationToken, Task> download, CancellationToken ct = default)
    {
        if (!IsChecksum(sha256)) throw new ArgumentException("a SHA-256 checksum is 64 lower-case hex digits", nameof(sha256));
        ArgumentNullException.ThrowIfNull(download);
        while (true)
        {
            Task? pending;
            Entry? unverified = null;
            lock (_gate)
            {
                if (_entries.TryGetValue(sha256, out var hit))
                {
                    if (hit.Verified) return RentLocked(hit);
                    unverified = hit;
                    Forget(hit);                     // verified below, outside the lock, then kept again
                }
                if (!_downloads.TryGetValue(sha256, out pending))
                {
                    pending = FetchAsync(sha256, unverified, download, ct);
                    _downloads[sha256] = pending;
                }
            }
            try
            {
                await pending.WaitAsync(ct);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // The caller whose download this was gave up; this one tries again.
            }
            finally
            {
                lock (_gate)
                    if (_downloads.TryGetValue(sha256, out var t) && t == pending && pending.IsCompleted) _downloads.Remove(sha256);
            }
        }
    }

    private async Task FetchAsync(string sha256, Entry? unverified, Func<Stream, CancellationToken, Task> download, CancellationToken ct)
    {
        await Task.Yield();   // started under the cache's lock: the work runs after it is released
        var path = System.IO.Path.Combine(Directory, sha256);
        if (unverified is not null && await HashOfAsync(path, ct) == sha256)
        {
            Keep(sha256, path, new FileInfo(path).Length);
            return;
        }
        var part = System.IO.Path.Combine(Directory, $"{sha256}.{Guid.NewGuid():N}.part");
        try
        {
            string actual;
            using var sha = SHA256.Create();
            await using (var file = new FileStream(part, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            await using (var hashing = new CryptoStream(file, sha, CryptoStreamMode.Write))
            {
                await download(hashing, ct);
                await hashing.FlushFinalBlockAsync(ct);
                actual = Convert.ToHexStringLower(sha.Hash!);
            }
            if (actual != sha256) throw new InvalidDataException($"the downloaded content has SHA-256 {actual}, not the {sha256} it was asked for");
            File.Move(part, path, overwrite: true);
        }
        finally
        {
            TryDelete(part);
        }
        Keep(sha256, path, new FileInfo(path).Length);
    }

    private void Keep(string sha256, string path, long size)
    {
        List<Entry> doomed = [];
        lock (_gate)
        {
            if (_entries.ContainsKey(sha256)) return;
            var entry = new Entry(sha256, path, size) { Verified = true };
            entry.Node = _recency.AddFirst(entry);
            _entries[sha256] = entry;
            Interlocked.Add(ref _bytes, size);
            // Evict the least recently used files no one is reading; the newest stays even when it alone is over the bound.
            for (var node = _recency.Last; node is not null && Interlocked.Read(ref _bytes) > MaxBytes;)
            {
                var previous = node.Previous;
                if (node.Value != entry && node.Value.Leases == 0)
                {
                    Forget(node.Value);
                    doomed.Add(node.Value);
                }
                node = previous;
            }
        }
        foreach (var e in doomed) TryDelete(e.Path);
        if (doomed.Count > 0)
        {
            Interlocked.Add(ref _evictions, doomed.Count);
            _metrics.Evicted(Name, doomed.Count);
        }
    }

    private Lease RentLocked(Entry entry)
    {
        _recency.Remove(entry.Node!);
        _recency.AddFirst(entry.Node!);
        entry.Leases++;
        return new Lease(this, entry);
    }

    private void Forget(Entry entry)
    {
        _recency.Remove(entry.Node!);
        _entries.Remove(entry.Sha256);
        Interlocked.Add(ref _bytes, -entry.Size);
    }

    private void Return(Entry entry)
    {
        lock (_gate) entry.Leases--;
    }

    /// <summary>Files left by an earlier run: complete ones are kept (checked again on first use), partial ones deleted.</summary>
    private void Adopt()
    {
        foreach (var file in new DirectoryInfo(Directory).EnumerateFiles().OrderByDescending(f => f.LastWriteTimeUtc))
        {
            if (!IsChecksum(file.Name))
            {
                if (file.Name.EndsWith(".part", StringComparison.Ordinal)) TryDelete(file.FullName);
                continue;
            }
            var entry = new Entry(file.Name, file.FullName, file.Length);
            entry.Node = _recency.AddLast(entry);
            _entries[file.Name] = entry;
            _bytes += file.Length;
        }
    }

    private static async Task<string> HashOfAsync(string path, CancellationToken ct)
    {
        try
        {
            await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind: an orphan partial file is deleted at the next start.
        }
    }

    public void Dispose() => _metrics.Unregister(this);

    internal sealed class Entry(string sha256, string path, long size)
    {
        public string Sha256 { get; } = sha256;
        public string Path { get; } = path;
        public long Size { get; } = size;
        public int Leases { get; set; }
        public bool Verified { get; set; }
        public LinkedListNode<Entry>? Node { get; set; }
    }

    /// <summary>A hold on a local file: it is not deleted before the lease is disposed (disposing twice is harmless).</summary>
    public sealed class Lease : IDisposable
    {
        private readonly LocalFileCache _cache;
        private readonly Entry _entry;
        private int _returned;

        internal Lease(LocalFileCache cache, Entry entry)
        {
            _cache = cache;
            _entry = entry;
        }

        public string Path => _entry.Path;
        public string Sha256 => _entry.Sha256;
        public long Length => _entry.Size;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0) _cache.Return(_entry);
        }
    }
}
