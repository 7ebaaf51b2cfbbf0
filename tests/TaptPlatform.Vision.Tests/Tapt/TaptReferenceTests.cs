using System.Text.Json;
using TaptPlatform.Cli;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Vision.Tests.Tapt;

/// <summary>
/// TaptDefense on the shipped default model against an independent plain-PyTorch implementation of the method
/// (tests/golden-generator/tapt_reference.py): two Fashion-MNIST test images, 64 views, two AdamW steps with the
/// alignment term at the paper's weight, tuned together in one batched pass here and one at a time there.
/// </summary>
public sealed class TaptReferenceTests
{
    private static readonly string Case = GoldenFiles.Case("tapt-default-model");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Test_time_tuning_matches_the_independent_pytorch_reference(bool efficientSelection)
    {
        var input = JsonDocument.Parse(File.ReadAllText(Path.Combine(Case, "input.json"))).RootElement;
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Case, "expected.json"))).RootElement.GetProperty("results");
        var model = ModelLocator.Shipped();
        Assert.NotNull(model);
        using var checkpoint = ClipCheckpoint.Load(model);
        Assert.True(checkpoint.Checksum == input.GetProperty("model_checksum").GetString(),
            "the default model changed: regenerate the golden files with tests/golden-generator/tapt_reference.py golden");
        using var artifact = PromptArtifact.Load(Path.Combine(checkpoint.Directory, "tapt-prompts.safetensors"), checkpoint);
        var clip = new PromptedClip(checkpoint);

        var s = input.GetProperty("settings");
        var options = new TaptOptions
        {
            Views = s.GetProperty("views").GetInt32(),
            SelectionFraction = s.GetProperty("selection_fraction").GetDouble(),
            Steps = s.GetProperty("steps").GetInt32(),
            LearningRate = s.GetProperty("lr").GetDouble(),
            WeightDecay = s.GetProperty("weight_decay").GetDouble(),
            AlignmentLayers = s.GetProperty("alignment_layers").GetInt32(),
            AlignmentWeight = s.GetProperty("alignment_weight").GetDouble(),
            Gamma = s.GetProperty("gamma").GetDouble(),
            EfficientSelection = efficientSelection,
        };
        var vocabulary = new LabelVocabulary(input.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!.ToLowerInvariant()).ToArray());
        var size = clip.ImageSize;

        var images = input.GetProperty("images").EnumerateArray().ToArray();
        var inputs = new List<TaptInput>();
        foreach (var image in images)
        {
            // The reference cropped with the views ViewAugmenter draws for this seed; they must still be the ones drawn.
            var seed = image.GetProperty("seed").GetInt32();
            var rng = new Random(seed);
            var augmenter = new ViewAugmenter(MinScale: artifact.Settings.ViewMinScale);
            foreach (var crop in image.GetProperty("crops").EnumerateArray())
            {
                var c = crop.EnumerateArray().Select(v => v.GetInt32()).ToArray();
                Assert.Equal(new ViewAugmenter.Crop(c[0], c[1], c[2], c[3], c[4] == 1), augmenter.Sample(size, size, rng));
            }
            var pixels = image.GetProperty("pixels").EnumerateArray().Select(v => (byte)v.GetInt32()).ToArray();
            var tensor = new LabelledImages(["image"], pixels, [0], 28, 28).ToTensor([0], size);
            inputs.Add(new TaptInput(tensor[0], seed));
        }

        var results = new TaptDefense(clip, artifact, options).Classify(inputs, vocabulary);

        for (var i = 0; i < images.Length; i++)
        {
            var want = expected[i];
            var got = results[i];
            AssertClose(want.GetProperty("baseline"), got.BaselineProbabilities, 1e-4, $"image {i} plain CLIP");
            AssertClose(want.GetProperty("apt"), got.AptProbabilities, 1e-4, $"image {i} APT");
            Assert.Equal(want.GetProperty("views_vote").GetInt32(), got.ViewsPrediction);
            var steps = want.GetProperty("steps").EnumerateArray().ToArray();
            Assert.Equal(steps.Length, got.Steps.Count);
            for (var k = 0; k < steps.Length; k++)
            {
                var step = got.Steps[k];
                Assert.Equal(steps[k].GetProperty("selected").EnumerateArray().Select(v => v.GetInt32()), step.SelectedViews);
                AssertRelative(steps[k].GetProperty("entropy").GetDouble(), step.EntropyLoss, $"image {i} step {k + 1} entropy");
                AssertRelative(steps[k].GetProperty("alignment_adversarial").GetDouble(), step.AlignmentAdversarial, $"image {i} step {k + 1} alignment (adversarial)");
                AssertRelative(steps[k].GetProperty("alignment_clean").GetDouble(), step.AlignmentClean, $"image {i} step {k + 1} alignment (clean)");
                AssertRelative(steps[k].GetProperty("total").GetDouble(), step.TotalLoss, $"image {i} step {k + 1} total");
            }
            // After two AdamW steps of lr 0.02 the prediction has moved well beyond these tolerances (checked below).
            AssertClose(want.GetProperty("probabilities"), got.Probabilities, 2e-4, $"image {i} TAPT");
            Assert.True(got.Probabilities.Zip(got.AptProbabilities, (a, b) => Math.Abs(a - b)).Max() > 0.01, "tuning should move the prediction");
        }
    }

    private static void AssertClose(JsonElement expected, float[] actual, double tolerance, string what)
    {
        var e = expected.EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(e.Length, actual.Length);
        for (var j = 0; j < e.Length; j++)
            Assert.True(Math.Abs(e[j] - actual[j]) <= tolerance, $"{what}: p[{j}] reference {e[j]:G6}, ours {actual[j]:G6}");
    }

    private static void AssertRelative(double expected, double actual, string what) =>
        Assert.True(Math.Abs(expected - actual) <= 1e-4 * Math.Max(1, Math.Abs(expected)), $"{what}: reference {expected:G8}, ours {actual:G8}");
}
