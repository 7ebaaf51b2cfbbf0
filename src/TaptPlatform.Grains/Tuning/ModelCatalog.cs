using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Models;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Tuning;

/// <summary>A model loaded once per silo and shared by its tuning threads (only read by them).</summary>
public sealed class LoadedModel : IDisposable
{
    private readonly Dictionary<string, PromptArtifact> _artifacts = new(StringComparer.Ordinal);
    // Tenants' artifacts are many and each tenant's own: bounded, keyed by the whole reference (tenant, name, version, checksum).
    private readonly BoundedCache<TenantArtifactReference, LoadedTenantArtifact> _tenantArtifacts;
    private readonly Lock _gate = new();

    private readonly IDisposable? _files;

    internal LoadedModel(string name, ClipCheckpoint checkpoint, Device device, long textCacheBytes, ArtifactCacheOptions? artifacts = null,
        IDisposable? files = null)
    {
        _files = files;
        Name = name;
        Bytes = checkpoint.Model.parameters().Sum(p => p.NumberOfElements * p.ElementSize);
        Checkpoint = checkpoint;
        Clip = new PromptedClip(checkpoint, device, textCacheBytes);
        Preprocessor = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        artifacts ??= new ArtifactCacheOptions();
        _tenantArtifacts = new BoundedCache<TenantArtifactReference, LoadedTenantArtifact>($"model.{name}.tenant-artifacts", artifacts.LoadedBytes,
            a => a.Bytes, artifacts.LoadedEntries);
    }

    /// <summary>The tenants' artifacts kept loaded for this model.</summary>
    public ICacheStatistics TenantArtifacts => _tenantArtifacts;

    /// <summary>
    /// A lease on a tenant's artifact, loaded from <paramref name="file"/> (its local copy, already checked against the
    /// reference's checksum) and checked against this model on first use. Synchronous: call it on a tuning thread.
    /// </summary>
    public BoundedCache<TenantArtifactReference, LoadedTenantArtifact>.Lease TenantArtifact(TenantArtifactReference reference, string file) =>
        _tenantArtifacts.Rent(reference, r =>
        {
            try
            {
                return new LoadedTenantArtifact(PromptArtifact.Load(file, Checkpoint), new FileInfo(file).Length);
            }
            catch (PromptArtifactException e)
            {
                throw new TuningFailedException($"prompt artifact '{r.DisplayName}': {e.Message.Replace(file, "the file", StringComparison.Ordinal)}");
            }
        });

    public string Name { get; }

    /// <summary>Bytes of the model's weights in device memory.</summary>
    public long Bytes { get; }

    public ClipCheckpoint Checkpoint { get; }
    public PromptedClip Clip { get; }
    public ImagePreprocessor Preprocessor { get; }

    /// <summary>The named prompt artifact of this model (null: the default file), loaded on first use.</summary>
    public (string Name, PromptArtifact Artifact) Artifact(string? name)
    {
        var file = name is null ? ModelCatalogOptions.DefaultArtifactFile
            : Identifiers.RequireName(name, "prompt artifact").EndsWith(".safetensors", StringComparison.Ordinal) ? name : name + ".safetensors";
        lock (_gate)
        {
            if (_artifacts.TryGetValue(file, out var a)) return (file, a);
            var path = Path.Combine(Checkpoint.Directory, file);
            if (!File.Exists(path)) throw new TuningFailedException($"model '{Name}' has no prompt artifact '{file}'");
            try
            {
                a = PromptArtifact.Load(path, Checkpoint);
            }
            catch (PromptArtifactException e)
            {
                throw new TuningFailedException(e.Message);
            }
            _artifacts[file] = a;
            return (file, a);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var a in _artifacts.Values) a.Dispose();
            _artifacts.Clear();
        }
        _tenantArtifacts.Dispose();
        Clip.Dispose();
        Checkpoint.Dispose();
        _files?.Dispose();
    }
}

/// <summary>A tenant's artifact loaded for a model, with the bytes its file took (what the loaded cache counts).</summary>
public sealed record LoadedTenantArtifact(PromptArtifact Artifact, long Bytes) : IDisposable
{
    public void Dispose() => Artifact.Dispose();
}

/// <summary>
/// Loads models by name, once per silo, from the configured local folders (read-only, for development) or from a
/// registered model's folder fetched to this silo (<see cref="Offer"/>). Loaded models are leased and bounded
/// (<see cref="ModelCacheOptions.MaxLoaded"/>, <see cref="ModelCacheOptions.MaxLoadedBytes"/>): the least recently used is
/// unloaded once no work holds it. Each model's text cache is bounded by the engine's
/// <see cref="TuningEngineOptions.TextCacheBytes"/> (the evaluation engine shares the models).
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    private readonly IOptions<ModelCatalogOptions> _options;
    private readonly ILogger<ModelCatalog> _log;
    private readonly ArtifactCacheOptions? _artifacts;
    private readonly BoundedCache<string, LoadedModel> _models;
    private readonly Dictionary<string, FetchedModel> _fetched = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly Lock _loading = new();
    private readonly long _textCacheBytes;

    public ModelCatalog(IOptions<ModelCatalogOptions> options, ILogger<ModelCatalog> log, IOptions<TuningEngineOptions>? engine = null,
        IOptions<ArtifactCacheOptions>? artifacts = null, IOptions<ModelCacheOptions>? cache = null)
    {
        _options = options;
        _log = log;
        _artifacts = artifacts?.Value;
        _textCacheBytes = Validated(engine?.Value ?? new TuningEngineOptions()).TextCacheBytes;
        var bounds = cache?.Value ?? new ModelCacheOptions();
        bounds.Validate();
        _models = new BoundedCache<string, LoadedModel>("models.loaded", bounds.MaxLoadedBytes, m => m.Bytes, bounds.MaxLoaded);
    }

    private static TuningEngineOptions Validated(TuningEngineOptions o)
    {
        o.Validate();
        return o;
    }

    /// <summary>The models loaded now (leases and bytes, for metrics and the registry's listing).</summary>
    public ICacheStatistics Loaded => _models;

    /// <summary>True when the model is loaded on this silo now.</summary>
    public bool IsLoaded(string name)
    {
        if (!_models.TryRent(name, out var lease)) return false;
        lease.Dispose();
        return true;
    }

    /// <summary>True when the model is loaded, or has a local or fetched folder: no fetch is needed.</summary>
    /// <remarks>Asked before every image: the loaded case (the usual one) is answered from memory, without touching the disk.</remarks>
    public bool IsAvailable(string name) => IsLoaded(name) || Locate(name) is { } dir && Directory.Exists(dir);

    /// <summary>The directory a model name resolves to (a local folder first, then a fetched one), or null.</summary>
    public string? Locate(string name)
    {
        if (!Identifiers.IsValidName(name)) return null;
        var o = _options.Value;
        if (o.Directories.TryGetValue(name, out var dir)) return dir;
        if (o.Root is { Length: > 0 } root && Directory.Exists(Path.Combine(root, name))) return Path.Combine(root, name);
        lock (_gate) return _fetched.TryGetValue(name, out var f) ? f.Directory : null;
    }

    /// <summary>
    /// Hands the catalog a registered model's fetched folder; it loads from there and keeps the files until the model
    /// is unloaded. A folder offered while one is waiting replaces it.
    /// </summary>
    public void Offer(string name, FetchedModel fetched)
    {
        lock (_gate)
        {
            if (_fetched.Remove(name, out var old)) old.Dispose();
            _fetched[name] = fetched;
        }
    }

    /// <summary>A lease on the loaded model; loads it on first use (outside any dispose scope). Dispose it when done.</summary>
    public BoundedCache<string, LoadedModel>.Lease Rent(string name, Device device)
    {
        if (_models.TryRent(name, out var hit)) return hit;
        // One load at a time: two threads asking for a model not yet loaded must not both read its weights.
        lock (_loading)
        {
            if (_models.TryRent(name, out hit)) return hit;
            return _models.Rent(name, n => Load(n, device));
        }
    }

    private LoadedModel Load(string name, Device device)
    {
        var dir = Locate(name);
        if (dir is null || !Directory.Exists(dir))
            throw new TuningFailedException($"unknown model '{name}' (neither in this silo's model folders nor registered and fetched)");
        ClipCheckpoint ckpt;
        try
        {
            ckpt = ClipCheckpoint.Load(dir, device);
        }
        catch (ClipCheckpointException e)
        {
            throw new TuningFailedException($"model '{name}' cannot be loaded: {e.Message}");
        }
        FetchedModel? files;
        lock (_gate) _fetched.Remove(name, out files);
        _log.LogInformation("Loaded model {Model} from {Directory} ({Checksum})", name, ckpt.Directory, ckpt.Checksum);
        return new LoadedModel(name, ckpt, device, _textCacheBytes, _artifacts, files);
    }

    public void Dispose()
    {
        _models.Dispose();
        lock (_gate)
        {
            foreach (var f in _fetched.Values) f.Dispose();
            _fetched.Clear();
        }
    }
}
