using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Caching;

namespace TaptPlatform.Grains.Models;

/// <summary>
/// Registered models' files on an accelerator silo: each file fetched from the models container on first use, checked
/// against the SHA-256 the registry recorded, and kept in a bounded local file cache (<see cref="LocalFileCache"/>, least
/// recently used deleted first). A model is handed out as a folder of links to its cached files, leased until released.
/// </summary>
public sealed class ModelFileCache : IDisposable
{
    private readonly ModelStore _store;
    private readonly LocalFileCache _files;
    private readonly LocalCacheFolder _root;

    public ModelFileCache(IOptions<ModelCacheOptions> options, ModelStore store)
    {
        var o = options.Value;
        o.Validate();
        _store = store;
        _root = new LocalCacheFolder(o.Directory, "tapt-model-cache");
        _files = new LocalFileCache("models.disk", Path.Combine(_root.Path, "files"), o.DiskBytes);
    }

    public ICacheStatistics Files => _files;

    /// <summary>The model's folder with every file fetched and checked; <see cref="TuningFailedException"/> when one cannot be.</summary>
    public async Task<FetchedModel> FetchAsync(RegisteredModel model, CancellationToken ct = default)
    {
        var leases = new List<LocalFileCache.Lease>(model.Files.Length);
        try
        {
            foreach (var file in model.Files)
            {
                if (!ModelStore.IsFileName(file.Path) || !LocalFileCache.IsChecksum(file.Sha256))
                    throw new TuningFailedException($"model '{model.Name}' has an invalid file record '{file.Path}'");
                try
                {
                    leases.Add(await _files.GetAsync(file.Sha256, (s, c) => _store.DownloadAsync(model.Prefix, file.Path, s, c), ct));
                }
                catch (InvalidDataException e)
                {
                    throw new TuningFailedException($"model '{model.Name}': '{file.Path}' in storage is not the file the registry verified ({e.Message})");
                }
            }
            // A folder per content (name and checksum): links to the cached files, named as the model's folder names them.
            var folder = Path.Combine(_root.Path, "models", $"{model.Name}-{model.Checksum.Replace("sha256:", "", StringComparison.Ordinal)[..16]}");
            Directory.CreateDirectory(folder);
            for (var i = 0; i < leases.Count; i++)
            {
                var link = Path.Combine(folder, model.Files[i].Path);
                if (File.Exists(link) || new FileInfo(link).LinkTarget is not null) File.Delete(link);
                File.CreateSymbolicLink(link, leases[i].Path);
            }
            return new FetchedModel(model, folder, leases);
        }
        catch
        {
            foreach (var l in leases) l.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _files.Dispose();
        _root.Dispose();
    }
}

/// <summary>A registered model's folder on this silo; its files stay on disk until this is disposed.</summary>
public sealed class FetchedModel(RegisteredModel model, string directory, IReadOnlyList<LocalFileCache.Lease> files) : IDisposable
{
    public RegisteredModel Model { get; } = model;
    public string Directory { get; } = directory;

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
    }
}
