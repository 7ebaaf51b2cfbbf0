namespace TaptPlatform.Grains.Models;

/// <summary>Limits on registered models (configuration section <c>Tapt:ModelRegistry</c>).</summary>
public sealed class ModelRegistryOptions : ISelfValidatingOptions
{
    public const string Section = "Tapt:ModelRegistry";

    /// <summary>Bytes a model folder may hold (ViT-L/14 in fp32 is about 1.7 GB).</summary>
    public long MaxBytes { get; set; } = 4L << 30;

    public void Validate()
    {
        if (MaxBytes < 1L << 20) throw new ArgumentException($"{Section}:MaxBytes must be at least 1 MiB");
    }
}

/// <summary>How an accelerator silo keeps registered models (configuration section <c>Tapt:ModelCache</c>).</summary>
public sealed class ModelCacheOptions : ISelfValidatingOptions
{
    public const string Section = "Tapt:ModelCache";

    /// <summary>The local folder of fetched model files (default: a folder of this process under the temporary folder, removed when it stops).</summary>
    public string? Directory { get; set; }

    /// <summary>Bytes of fetched model files kept on local disk (least recently used deleted first).</summary>
    public long DiskBytes { get; set; } = 16L << 30;

    /// <summary>Models kept loaded in device memory (least recently used unloaded first, once no work uses it).</summary>
    public int MaxLoaded { get; set; } = 4;

    /// <summary>Bytes of model weights kept loaded in device memory.</summary>
    public long MaxLoadedBytes { get; set; } = 8L << 30;

    public void Validate()
    {
        if (DiskBytes < 1L << 20) throw new ArgumentException($"{Section}:DiskBytes must be at least 1 MiB");
        if (MaxLoaded is < 1 or > 64) throw new ArgumentException($"{Section}:MaxLoaded must be in 1..64");
        if (MaxLoadedBytes < 1L << 20) throw new ArgumentException($"{Section}:MaxLoadedBytes must be at least 1 MiB");
    }
}
