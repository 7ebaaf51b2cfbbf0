using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Tuning;

/// <summary>The tuning engine of an accelerator silo (configuration section <c>Tapt:Engine</c>).</summary>
public sealed class TuningEngineOptions : ISelfValidatingOptions
{
    /// <summary>Dedicated tuning threads (one per device, or a few per host's cores).</summary>
    public int Threads { get; set; } = 1;

    /// <summary>Images waiting for a thread; when full, model grains (and so job grains) wait.</summary>
    public int QueueCapacity { get; set; } = 32;

    /// <summary>Most images one tuning pass classifies together.</summary>
    public int MaxBatchSize { get; set; } = 8;

    /// <summary>"cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>
    /// Number format of the test-time step: "auto" (bf16 where the device has native bf16 matrix products, fp32 elsewhere;
    /// the README's speed section has the agreement measured), "fp32", "bf16-scoring" or "bf16".
    /// </summary>
    public string Precision { get; set; } = TaptPrecisions.Auto;

    /// <summary>
    /// How long one slice of long evaluation-thread work (a prompt training epoch, its validation) runs before the
    /// evaluation units of other tenants queued meanwhile get the thread. A slice ends after the batch that passes it.
    /// </summary>
    public TimeSpan Slice { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>libtorch intra-op threads (0: leave libtorch's default).</summary>
    public int TorchThreads { get; set; }

    /// <summary>Bytes of token ids and plain text features each loaded model keeps on the device, over all vocabularies.</summary>
    public long TextCacheBytes { get; set; } = 64L << 20;

    /// <summary>TAPT defenses kept (one per artifact and test-time settings; each holds reference statistics on the device).</summary>
    public int DefenseCacheEntries { get; set; } = 16;

    /// <summary>Bytes of vocabulary texts kept after model grains resolved them from their references.</summary>
    public long VocabularyCacheBytes { get; set; } = 16L << 20;

    public void Validate()
    {
        if (Threads is < 1 or > 64) throw new ArgumentException("Tapt:Engine:Threads must be in 1..64");
        if (QueueCapacity is < 1 or > 100_000) throw new ArgumentException("Tapt:Engine:QueueCapacity must be in 1..100000");
        if (MaxBatchSize is < 1 or > 256) throw new ArgumentException("Tapt:Engine:MaxBatchSize must be in 1..256");
        if (Precision != TaptPrecisions.Auto && !TaptPrecisions.TryParse(Precision, out _))
            throw new ArgumentException($"Tapt:Engine:Precision must be {TaptPrecisions.Auto}, {string.Join(", ", TaptPrecisions.Names)}");
        if (Slice <= TimeSpan.Zero || Slice > TimeSpan.FromHours(1)) throw new ArgumentException("Tapt:Engine:Slice must be in (0, 1 h]");
        if (TorchThreads < 0) throw new ArgumentException("Tapt:Engine:TorchThreads must not be negative");
        if (TextCacheBytes is < 1 or > 1L << 40) throw new ArgumentException("Tapt:Engine:TextCacheBytes must be in 1..2^40");
        if (DefenseCacheEntries is < 1 or > 4096) throw new ArgumentException("Tapt:Engine:DefenseCacheEntries must be in 1..4096");
        if (VocabularyCacheBytes is < 1 or > 1L << 40) throw new ArgumentException("Tapt:Engine:VocabularyCacheBytes must be in 1..2^40");
    }
}

/// <summary>
/// Where an accelerator silo finds models by name (configuration section <c>Tapt:Models</c>): explicit
/// <see cref="Directories"/> first, then <c>{Root}/{name}</c>. A model directory is a Hugging Face CLIP directory;
/// its prompt artifacts are <c>tapt-prompts.safetensors</c> (the default) or <c>{artifact}.safetensors</c> beside it.
/// </summary>
public sealed class ModelCatalogOptions
{
    public const string DefaultArtifactFile = "tapt-prompts.safetensors";

    /// <summary>Folder holding one sub-folder per model (default: the <c>models</c> folder of the deployment).</summary>
    public string? Root { get; set; }

    /// <summary>Model name → directory.</summary>
    public Dictionary<string, string> Directories { get; set; } = new(StringComparer.Ordinal);
}
