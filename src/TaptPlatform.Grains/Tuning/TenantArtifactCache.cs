using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Caching;

namespace TaptPlatform.Grains.Tuning;

/// <summary>Where an accelerator silo keeps tenants' prompt artifacts (configuration section <c>Tapt:ArtifactCache</c>).</summary>
public sealed class ArtifactCacheOptions : ISelfValidatingOptions
{
    public const string Section = "Tapt:ArtifactCache";

    /// <summary>The local folder of fetched files (default: a folder of this process under the temporary folder, removed when it stops).</summary>
    public string? Directory { get; set; }

    /// <summary>Bytes of fetched files kept on local disk (least recently used deleted first).</summary>
    public long DiskBytes { get; set; } = 1L << 30;

    /// <summary>Bytes of tenants' artifacts each loaded model keeps loaded (prompts and statistics in memory).</summary>
    public long LoadedBytes { get; set; } = 256L << 20;

    /// <summary>Tenants' artifacts each loaded model keeps loaded.</summary>
    public int LoadedEntries { get; set; } = 32;

    public void Validate()
    {
        if (DiskBytes < 1L << 20) throw new ArgumentException($"{Section}:DiskBytes must be at least 1 MiB");
        if (LoadedBytes < 1L << 20) throw new ArgumentException($"{Section}:LoadedBytes must be at least 1 MiB");
        if (LoadedEntries is < 1 or > 4096) throw new ArgumentException($"{Section}:LoadedEntries must be in 1..4096");
    }
}

/// <summary>
/// Tenants' prompt artifacts on an accelerator silo: fetched from the tenant's container on first use, checked against
/// the SHA-256 the tenant's catalogue recorded, and kept in a bounded local file cache (<see cref="LocalFileCache"/>,
/// the part a model cache can reuse). Keyed by checksum only on disk; a tenant reaches a file only through a reference
/// its own catalogue resolved.
/// </summary>
public sealed class TenantArtifactCache : IDisposable
{
    private readonly PromptArtifactStore _store;
    private readonly LocalFileCache _files;
    private readonly LocalCacheFolder _folder;

    public TenantArtifactCache(IOptions<ArtifactCacheOptions> options, PromptArtifactStore store)
    {
        var o = options.Value;
        o.Validate();
        _store = store;
        _folder = new LocalCacheFolder(o.Directory, "tapt-artifact-cache");
        _files = new LocalFileCache("tenant-prompt-artifacts.disk", _folder.Path, o.DiskBytes);
    }

    public ICacheStatistics Files => _files;

    /// <summary>The local folder of the fetched files (each named by its SHA-256).</summary>
    public string Directory => _files.Directory;

    /// <summary>A lease on the artifact's local file, fetched and checked when not kept; <see cref="TuningFailedException"/> when it cannot be.</summary>
    public async Task<LocalFileCache.Lease> GetAsync(TenantArtifactReference artifact, CancellationToken ct = default)
    {
        Identifiers.RequireTenantId(artifact.TenantId);
        if (!LocalFileCache.IsChecksum(artifact.Sha256)) throw new TuningFailedException($"prompt artifact '{artifact.DisplayName}' has no valid checksum");
        try
        {
            return await _files.GetAsync(artifact.Sha256, (stream, c) => _store.DownloadAsync(artifact, stream, c), ct);
        }
        catch (InvalidDataException e)
        {
            throw new TuningFailedException($"prompt artifact '{artifact.DisplayName}' in storage is not the version its catalogue recorded ({e.Message})");
        }
    }

    public void Dispose()
    {
        _files.Dispose();
        _folder.Dispose();
    }
}
