using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// The models the tests run: a tiny model (the golden tiny CLIP checkpoint plus a prompt artifact made here from
/// random prompts and statistics, so it runs in milliseconds) and the shipped default model.
/// </summary>
public static class TestModels
{
    public const string Tiny = "tiny";
    public const string Default = "fashion-clip-small";

    private static readonly Lazy<string> TinyRoot = new(CreateTiny, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<LabelledImages> Fashion = new(() => FashionMnist.Load("test"), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>A folder holding the "tiny" model directory (made once per test run).</summary>
    public static string TinyDirectory => Path.Combine(TinyRoot.Value, Tiny);

    /// <summary>The repository's models folder (the default model lives in models/fashion-clip-small).</summary>
    public static string RepositoryModels => Path.Combine(RepositoryRoot.Find(), "models");

    /// <summary>The default model's directory: $TAPT_MODEL (as for the CLI) or models/fashion-clip-small.</summary>
    public static string DefaultDirectory =>
        Environment.GetEnvironmentVariable("TAPT_MODEL") is { Length: > 0 } env ? env : Path.Combine(RepositoryModels, Default);

    public static LabelledImages FashionTest => Fashion.Value;

    public static IReadOnlyList<string> FashionLabels => FashionMnist.ClassNames.Select(c => c.ToLowerInvariant()).ToArray();

    /// <summary>Fashion-MNIST test image <paramref name="index"/> as an 8-bit RGB PNG (grey replicated), 28×28.</summary>
    public static byte[] FashionPng(int index) => FashionTest.EncodePng(index);

    private static string CreateTiny()
    {
        var source = Path.Combine(AppContext.BaseDirectory, "Golden", "tiny-gelu-new-eos");
        var root = Directory.CreateTempSubdirectory("tapt-grains-models-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        var dir = Path.Combine(root, Tiny);
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "config.json", "merges.txt", "model.safetensors", "preprocessor_config.json", "vocab.json" })
            File.Copy(Path.Combine(source, f), Path.Combine(dir, f));

        using var checkpoint = ClipCheckpoint.Load(dir);
        var clip = new PromptedClip(checkpoint);
        var cfg = checkpoint.Config;
        var shape = PromptShape.For(PromptDesign.VLI, cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers);
        var gen = new Generator(7);
        var size = cfg.Vision.ImageSize;
        Tensor[] Batches(int seed)
        {
            var g = new Generator((ulong)seed);
            return [rand([8, 3, size, size], generator: g), rand([8, 3, size, size], generator: g)];
        }
        var adv = PromptSet.Initialise(shape, checkpoint.Model, checkpoint.Tokenizer, gen);
        var clean = PromptSet.Initialise(shape, checkpoint.Model, checkpoint.Tokenizer, gen);
        using var artifact = new PromptArtifact
        {
            Shape = shape,
            ModelChecksum = checkpoint.Checksum,
            Adversarial = adv,
            Clean = clean,
            AdversarialStatistics = StatisticsCalibrator.Compute(clip, adv, Batches(1), cfg.Vision.NumHiddenLayers, "P_adv, random images"),
            CleanStatistics = StatisticsCalibrator.Compute(clip, clean, Batches(2), cfg.Vision.NumHiddenLayers, "P_clean, random images"),
            AttackedStatistics = StatisticsCalibrator.Compute(clip, adv, Batches(3), cfg.Vision.NumHiddenLayers, "P_adv, other random images"),
            Settings = new TaptOptions { Views = 16, Steps = 1 },
        };
        artifact.Save(Path.Combine(dir, "tapt-prompts.safetensors"));
        return root;
    }
}
