using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
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

    internal LoadedModel(string name, ClipCheckpoint checkpoint, Device device, long textCacheBytes, ArtifactCacheOptions? artifacts = null)
    {
        Name = name;
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
    }
}

/// <summary>A tenant's artifact loaded for a model, with the bytes its file took (what the loaded cache counts).</summary>
public sealed record LoadedTenantArtifact(PromptArtifact Artifact, long Bytes) : IDisposable
{
    public void Dispose() => Artifact.Dispose();
}

/// <summary>
/// Loads models by name from the configured catalog, once per silo. Each model's text cache is bounded by the
/// engine's <see cref="TuningEngineOptions.TextCacheBytes"/> (the evaluation engine shares the models).
/// </summary>
public sealed class ModelCatalog(IOptions<ModelCatalogOptions> options, ILogger<ModelCatalog> log, IOptions<TuningEngineOptions>? engine = null,
    IOptions<ArtifactCacheOptions>? artifacts = null) : IDisposable
{
    private readonly Dictionary<string, LoadedModel> _models = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly long _textCacheBytes = Validated(engine?.Value ?? new TuningEngineOptions()).TextCacheBytes;

    private static TuningEngineOptions Validated(TuningEngineOptions o)
    {
        o.Validate();
        return o;
    }

    /// <summary>The directory a model name resolves to, or null.</summary>
    public string? Locate(string name)
    {
        if (!Identifiers.IsValidName(name)) return null;
        var o = options.Value;
        if (o.Directories.TryGetValue(name, out var dir)) return dir;
        return o.Root is { Length: > 0 } root ? Path.Combine(root, name) : null;
    }

    /// <summary>The loaded model; loads it on first use (outside any dispose scope).</summary>
    public LoadedModel Get(string name, Device device)
    {
        lock (_gate)
        {
            if (_models.TryGetValue(name, out var m)) return m;
            var dir = Locate(name);
            if (dir is null || !Directory.Exists(dir)) throw new TuningFailedException($"unknown model '{name}' (no directory for it in this silo's model catalog)");
            ClipCheckpoint ckpt;
            try
            {
                ckpt = ClipCheckpoint.Load(dir, device);
            }
            catch (ClipCheckpointException e)
            {
                throw new TuningFailedException($"model '{name}' cannot be loaded: {e.Message}");
            }
            log.LogInformation("Loaded model {Model} from {Directory} ({Checksum})", name, ckpt.Directory, ckpt.Checksum);
            m = new LoadedModel(name, ckpt, device, _textCacheBytes, artifacts?.Value);
            _models[name] = m;
            return m;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var m in _models.Values) m.Dispose();
            _models.Clear();
        }
    }
}
