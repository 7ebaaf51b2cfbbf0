namespace TaptPlatform.Grains.Storage;

/// <summary>
/// The folder a silo's local file cache keeps its files in: the configured one, or, when none is configured, a folder of
/// this process under the temporary folder, deleted when disposed (a configured folder outlives the process on purpose).
/// </summary>
public sealed class LocalCacheFolder : IDisposable
{
    private readonly bool _own;

    public LocalCacheFolder(string? configured, string purpose)
    {
        _own = configured is not { Length: > 0 };
        Path = _own ? System.IO.Path.Combine(System.IO.Path.GetTempPath(), purpose, $"{Environment.ProcessId}-{Guid.NewGuid():N}") : configured!;
    }

    public string Path { get; }

    public void Dispose()
    {
        if (!_own) return;
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A temporary folder left behind (or never made).
        }
    }
}
