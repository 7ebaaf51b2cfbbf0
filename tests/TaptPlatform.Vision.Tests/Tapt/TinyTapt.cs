using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Tapt;

/// <summary>A TAPT setup on the tiny golden checkpoint: random prompts, statistics from random images.</summary>
internal sealed class TinyTapt : IDisposable
{
    public TinyTapt(PromptDesign design = PromptDesign.VLI, bool attacked = false)
    {
        Checkpoint = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        Clip = new PromptedClip(Checkpoint);
        var cfg = Checkpoint.Config;
        var shape = PromptShape.For(design, cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers);
        var gen = new Generator(7);
        var adv = PromptSet.Initialise(shape, Checkpoint.Model, Checkpoint.Tokenizer, gen);
        var clean = PromptSet.Initialise(shape, Checkpoint.Model, Checkpoint.Tokenizer, gen);
        var size = cfg.Vision.ImageSize;
        Tensor[] Batches(int seed) { var g = new Generator((ulong)seed); return [rand([8, 3, size, size], generator: g), rand([8, 3, size, size], generator: g)]; }
        Artifact = new PromptArtifact
        {
            Shape = shape,
            ModelChecksum = Checkpoint.Checksum,
            Adversarial = adv,
            Clean = clean,
            AdversarialStatistics = StatisticsCalibrator.Compute(Clip, adv, Batches(1), cfg.Vision.NumHiddenLayers, "P_adv, random images"),
            CleanStatistics = StatisticsCalibrator.Compute(Clip, clean, Batches(2), cfg.Vision.NumHiddenLayers, "P_clean, random images"),
            AttackedStatistics = attacked ? StatisticsCalibrator.Compute(Clip, adv, Batches(3), cfg.Vision.NumHiddenLayers, "P_adv, other images") : null,
        };
        Vocabulary = new LabelVocabulary(["sneaker", "running shoe", "leather boot", "dress"]);
    }

    public ClipCheckpoint Checkpoint { get; }
    public PromptedClip Clip { get; }
    public PromptArtifact Artifact { get; }
    public LabelVocabulary Vocabulary { get; }

    public Tensor Image(int seed) => rand([3, Checkpoint.Config.Vision.ImageSize, Checkpoint.Config.Vision.ImageSize], generator: new Generator((ulong)seed));

    public void Dispose()
    {
        Artifact.Dispose();
        Checkpoint.Dispose();
    }
}
