using System.Security.Cryptography;
using TaptPlatform.Vision.Caching;

namespace TaptPlatform.Vision.Tests.Caching;

public sealed class LocalFileCacheTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("tapt-file-cache-tests-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static (byte[] Content, string Sha256) File(int size, byte fill)
    {
        var content = Enumerable.Repeat(fill, size).ToArray();
        return (content, Convert.ToHexStringLower(SHA256.HashData(content)));
    }

    private static Func<Stream, CancellationToken, Task> Serve(byte[] content, Action? onCall = null) => async (stream, ct) =>
    {
        onCall?.Invoke();
        await stream.WriteAsync(content, ct);
    };

    [Fact]
    public async Task A_file_is_downloaded_once_kept_by_checksum_and_the_least_recently_used_go_past_the_bound()
    {
        using var cache = new LocalFileCache("test-files", _directory, maxBytes: 250);
        var a = File(100, 1);
        var b = File(100, 2);
        var c = File(100, 3);
        var downloads = 0;
        using (var lease = await cache.GetAsync(a.Sha256, Serve(a.Content, () => downloads++)))
            Assert.Equal(a.Content, await System.IO.File.ReadAllBytesAsync(lease.Path));
        using (await cache.GetAsync(a.Sha256, Serve(a.Content, () => downloads++))) { }
        Assert.Equal(1, downloads);
        using (await cache.GetAsync(b.Sha256, Serve(b.Content))) { }
        using (await cache.GetAsync(a.Sha256, Serve(a.Content, () => downloads++))) { }   // a is now the most recently used
        using (await cache.GetAsync(c.Sha256, Serve(c.Content))) { }
        Assert.Equal(2, cache.Count);
        Assert.Equal(200, cache.Bytes);
        Assert.Equal(1, cache.Evictions);
        Assert.False(System.IO.File.Exists(Path.Combine(_directory, b.Sha256)));
        Assert.True(System.IO.File.Exists(Path.Combine(_directory, a.Sha256)));
        Assert.Equal(1, downloads);
    }

    [Fact]
    public async Task A_download_with_another_checksum_is_refused_and_nothing_is_kept()
    {
        using var cache = new LocalFileCache("test-files", _directory, maxBytes: 1000);
        var a = File(10, 1);
        var other = File(10, 9);
        await Assert.ThrowsAsync<InvalidDataException>(() => cache.GetAsync(a.Sha256, Serve(other.Content)));
        Assert.Equal(0, cache.Count);
        Assert.Empty(Directory.EnumerateFiles(_directory));
        await Assert.ThrowsAsync<ArgumentException>(() => cache.GetAsync("../etc/passwd", Serve(a.Content)));
    }

    [Fact]
    public async Task A_leased_file_is_not_deleted_even_past_the_bound()
    {
        using var cache = new LocalFileCache("test-files", _directory, maxBytes: 150);
        var a = File(100, 1);
        var b = File(100, 2);
        using var held = await cache.GetAsync(a.Sha256, Serve(a.Content));
        using (await cache.GetAsync(b.Sha256, Serve(b.Content))) { }
        Assert.True(System.IO.File.Exists(held.Path));
        Assert.Equal(2, cache.Count);
        var c = File(100, 3);
        using (await cache.GetAsync(c.Sha256, Serve(c.Content))) { }
        // b (not leased) went; a (leased) stayed.
        Assert.True(System.IO.File.Exists(held.Path));
        Assert.False(System.IO.File.Exists(Path.Combine(_directory, b.Sha256)));
    }

    [Fact]
    public async Task Files_from_an_earlier_run_are_checked_again_before_use()
    {
        var a = File(10, 1);
        var b = File(10, 2);
        using (var first = new LocalFileCache("test-files", _directory, maxBytes: 1000))
        {
            using (await first.GetAsync(a.Sha256, Serve(a.Content))) { }
            using (await first.GetAsync(b.Sha256, Serve(b.Content))) { }
        }
        // b's file is damaged while no cache runs; a partial download is left behind.
        await System.IO.File.WriteAllBytesAsync(Path.Combine(_directory, b.Sha256), [7, 7, 7]);
        await System.IO.File.WriteAllBytesAsync(Path.Combine(_directory, "x.part"), [1]);
        using var second = new LocalFileCache("test-files", _directory, maxBytes: 1000);
        Assert.False(System.IO.File.Exists(Path.Combine(_directory, "x.part")));
        var downloads = 0;
        using (var lease = await second.GetAsync(a.Sha256, Serve(a.Content, () => downloads++)))
            Assert.Equal(a.Content, await System.IO.File.ReadAllBytesAsync(lease.Path));
        Assert.Equal(0, downloads);
        using (var lease = await second.GetAsync(b.Sha256, Serve(b.Content, () => downloads++)))
            Assert.Equal(b.Content, await System.IO.File.ReadAllBytesAsync(lease.Path));
        Assert.Equal(1, downloads);
    }

    [Fact]
    public async Task Concurrent_requests_for_one_file_share_one_download()
    {
        using var cache = new LocalFileCache("test-files", _directory, maxBytes: 1000);
        var a = File(50, 4);
        var gate = new TaskCompletionSource();
        var downloads = 0;
        Func<Stream, CancellationToken, Task> slow = async (stream, ct) =>
        {
            Interlocked.Increment(ref downloads);
            await gate.Task;
            await stream.WriteAsync(a.Content, ct);
        };
        var requests = Enumerable.Range(0, 5).Select(_ => cache.GetAsync(a.Sha256, slow)).ToList();
        gate.SetResult();
        foreach (var lease in await Task.WhenAll(requests)) lease.Dispose();
        Assert.Equal(1, downloads);
    }
}
