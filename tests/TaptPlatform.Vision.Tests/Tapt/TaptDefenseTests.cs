using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;
using TorchSharp;

namespace TaptPlatform.Vision.Tests.Tapt;

public class TaptDefenseTests
{
    private static readonly TaptOptions Fast = new() { Views = 16, SelectionFraction = 0.25, Steps = 2, LearningRate = 5e-2, AlignmentLayers = 2 };

    private static void AssertSameProbabilities(TaptResult a, TaptResult b, double tol = 1e-5)
    {
        for (var i = 0; i < a.Probabilities.Length; i++)
            Assert.True(Math.Abs(a.Probabilities[i] - b.Probabilities[i]) <= tol, $"p[{i}]: {a.Probabilities[i]} vs {b.Probabilities[i]}");
    }

    [Theory]
    [InlineData(PromptDesign.V)]
    [InlineData(PromptDesign.VLI)]
    [InlineData(PromptDesign.VLJ)]
    public void Batched_tuning_equals_tuning_one_image_at_a_time(PromptDesign design)
    {
        using var t = new TinyTapt(design);
        var defense = new TaptDefense(t.Clip, t.Artifact, Fast);
        var inputs = Enumerable.Range(0, 3).Select(i => new TaptInput(t.Image(100 + i), 40 + i)).ToList();
        var together = defense.Classify(inputs, t.Vocabulary);
        for (var i = 0; i < inputs.Count; i++)
        {
            var alone = defense.Classify([inputs[i]], t.Vocabulary)[0];
            AssertSameProbabilities(alone, together[i]);
            Assert.Equal(alone.Steps[0].SelectedViews, together[i].Steps[0].SelectedViews);
        }
    }

    [Theory]
    [InlineData(PromptDesign.V)]
    [InlineData(PromptDesign.VLI)]
    public void Efficient_selection_gives_the_straightforward_result(PromptDesign design)
    {
        using var t = new TinyTapt(design);
        var inputs = new[] { new TaptInput(t.Image(5), 1), new TaptInput(t.Image(6), 2) };
        var fast = new TaptDefense(t.Clip, t.Artifact, Fast).Classify(inputs, t.Vocabulary);
        var plain = new TaptDefense(t.Clip, t.Artifact, Fast with { EfficientSelection = false }).Classify(inputs, t.Vocabulary);
        for (var i = 0; i < inputs.Length; i++)
        {
            AssertSameProbabilities(plain[i], fast[i]);
            Assert.Equal(plain[i].ViewsPrediction, fast[i].ViewsPrediction);
            for (var s = 0; s < Fast.Steps; s++)
            {
                Assert.Equal(plain[i].Steps[s].SelectedViews, fast[i].Steps[s].SelectedViews);
                Assert.Equal(plain[i].Steps[s].TotalLoss, fast[i].Steps[s].TotalLoss, 4);
            }
        }
    }

    [Theory]
    [InlineData(PromptDesign.V, 1)]        // one view per chunk
    [InlineData(PromptDesign.VLI, 6)]      // 16 views as 6 + 6 + 4
    [InlineData(PromptDesign.VLJ, 9)]      // 8 + 8
    public void Scoring_in_chunks_gives_the_one_pass_result(PromptDesign design, int viewsPerChunk)
    {
        using var t = new TinyTapt(design);
        var inputs = new[] { new TaptInput(t.Image(7), 3), new TaptInput(t.Image(8), 4) };
        var vision = t.Checkpoint.Config.Vision;
        var bytesPerView = inputs.Length * (vision.NumPositions + t.Artifact.Shape.TokensPerLayer) * Math.Max(vision.IntermediateSize, vision.HiddenSize) * sizeof(float);
        var chunkBytes = (long)bytesPerView * viewsPerChunk;
        var whole = new TaptDefense(t.Clip, t.Artifact, Fast).Classify(inputs, t.Vocabulary);
        var chunked = new TaptDefense(t.Clip, t.Artifact, Fast with { ScoringChunkBytes = chunkBytes }).Classify(inputs, t.Vocabulary);
        for (var i = 0; i < inputs.Length; i++)
        {
            AssertSameProbabilities(whole[i], chunked[i]);
            Assert.Equal(whole[i].AptPrediction, chunked[i].AptPrediction);
            Assert.Equal(whole[i].ViewsPrediction, chunked[i].ViewsPrediction);
            for (var s = 0; s < Fast.Steps; s++)
            {
                Assert.Equal(whole[i].Steps[s].SelectedViews, chunked[i].Steps[s].SelectedViews);
                Assert.Equal(whole[i].Steps[s].TotalLoss, chunked[i].Steps[s].TotalLoss, 4);
            }
        }
    }

    [Theory]
    [InlineData(PromptDesign.V)]
    [InlineData(PromptDesign.VLJ)]
    public void Bf16_scoring_only_ranks_the_views(PromptDesign design)
    {
        using var t = new TinyTapt(design);
        var inputs = new[] { new TaptInput(t.Image(9), 5), new TaptInput(t.Image(10), 6) };
        // With every view selected the ranking cannot matter: the step and the prediction must be fp32's.
        var all = Fast with { SelectionFraction = 1 };
        var fp32 = new TaptDefense(t.Clip, t.Artifact, all).Classify(inputs, t.Vocabulary);
        var bf16 = new TaptDefense(t.Clip, t.Artifact, all with { Precision = TaptPrecision.Bf16Scoring }).Classify(inputs, t.Vocabulary);
        for (var i = 0; i < inputs.Length; i++)
        {
            AssertSameProbabilities(fp32[i], bf16[i]);
            for (var c = 0; c < t.Vocabulary.Count; c++)      // APT's prediction is made in fp32 (alone, so to float tolerance)
                Assert.Equal(fp32[i].AptProbabilities[c], bf16[i].AptProbabilities[c], 5);
            Assert.Equal(fp32[i].Steps[0].TotalLoss, bf16[i].Steps[0].TotalLoss, 4);
            Assert.Equal(fp32[i].Steps[0].SelectedViews.Order(), bf16[i].Steps[0].SelectedViews.Order());
        }

        // The bf16 pass's features are fp32's to bfloat16's precision (8 bits of mantissa), not something else.
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var views = new ViewAugmenter().Views(inputs[0].Image, 8, new Random(1));
        var exact = t.Clip.ImageFeatures(views, t.Artifact.Adversarial);
        var low = t.Clip.ImageFeatures(views, t.Artifact.Adversarial, TaptPrecision.Bf16Scoring);
        Assert.Equal(ScalarType.Float32, low.dtype);
        var cosine = (exact * low).sum(-1).min().item<float>();
        Assert.InRange(cosine, 0.99f, 1.001f);
        Assert.True((exact - low).abs().max().item<float>() > 0, "the bf16 pass returned the fp32 features");
    }

    [Fact]
    public void Bf16_passes_carry_fp32_gradients_to_the_prompts()
    {
        using var t = new TinyTapt(PromptDesign.VLI);
        using var scope = NewDisposeScope();
        using var views = new ViewAugmenter().Views(t.Image(3), 8, new Random(2));
        float[] Gradient(TaptPrecision precision, out List<Tensor> blocks)
        {
            using var prompts = t.Artifact.Adversarial.Clone();
            prompts.SetRequiresGrad(true);
            blocks = [];
            var features = t.Clip.ImageFeatures(views, prompts, precision, blocks, 2);
            Assert.Equal(ScalarType.Float32, features.dtype);
            // A loss of the features and of the captured block inputs, as the step's entropy and alignment are.
            features[.., 0].sum().Plus(blocks[1].var(0).mean()).backward();
            var grad = prompts.VisionTokens().Layers[1]!.grad!;
            Assert.Equal(ScalarType.Float32, grad.dtype);
            return grad.flatten().data<float>().ToArray();
        }
        var exact = Gradient(TaptPrecision.Fp32, out var exactBlocks);
        var low = Gradient(TaptPrecision.Bf16, out var lowBlocks);
        Assert.Equal(exactBlocks.Count, lowBlocks.Count);
        Assert.All(lowBlocks, b => Assert.Equal(ScalarType.Float32, b.dtype));
        var cosine = exact.Zip(low).Sum(p => (double)p.First * p.Second) / Math.Sqrt(exact.Sum(x => (double)x * x) * low.Sum(x => (double)x * x));
        Assert.InRange(cosine, 0.98, 1.0001);
        Assert.NotEqual(exact, low);         // the pass did run in bf16
    }

    [Fact]
    public void Bf16_step_tunes_like_fp32()
    {
        using var t = new TinyTapt(PromptDesign.VLI);
        var inputs = new[] { new TaptInput(t.Image(9), 5), new TaptInput(t.Image(10), 6) };
        var all = Fast with { SelectionFraction = 1, Steps = 1 };     // every view selected: the ranking cannot differ
        var fp32 = new TaptDefense(t.Clip, t.Artifact, all).Classify(inputs, t.Vocabulary);
        var bf16 = new TaptDefense(t.Clip, t.Artifact, all with { Precision = TaptPrecision.Bf16 }).Classify(inputs, t.Vocabulary);
        for (var i = 0; i < inputs.Length; i++)
        {
            for (var c = 0; c < t.Vocabulary.Count; c++)      // APT's prediction is made in fp32
                Assert.Equal(fp32[i].AptProbabilities[c], bf16[i].AptProbabilities[c], 5);
            var (a, b) = (fp32[i].Steps[0].TotalLoss, bf16[i].Steps[0].TotalLoss);
            Assert.True(Math.Abs(a - b) <= 0.02 * Math.Abs(a), $"loss {a} (fp32) vs {b} (bf16)");
            Assert.True(Math.Abs(a - b) > 1e-5 * Math.Abs(a), "the step did not run in bf16");  // fp32 sums in another order differ by ~1e-7
            AssertSameProbabilities(fp32[i], bf16[i], 0.05);
        }
    }

    [Theory]
    [InlineData(0.08)]
    [InlineData(0.6)]
    public void Views_prediction_is_the_vote_of_the_selected_views_under_the_pretrained_prompts(double viewMinScale)
    {
        using var t = new TinyTapt();
        var options = Fast with { Views = 8, SelectionFraction = 1, Steps = 1, ViewMinScale = viewMinScale };
        var input = new TaptInput(t.Image(4), 17);
        var result = new TaptDefense(t.Clip, t.Artifact, options).Classify([input], t.Vocabulary)[0];

        using var scope = NewDisposeScope();
        var views = new ViewAugmenter(MinScale: viewMinScale).Views(input.Image, options.Views, new Random(input.Seed));
        using var _ = no_grad();
        var vote = t.Clip.Classify(views, t.Vocabulary, t.Artifact.Adversarial).softmax(-1).mean([0]).argmax().item<long>();
        Assert.Equal((int)vote, result.ViewsPrediction);

        var untuned = new TaptDefense(t.Clip, t.Artifact, options with { Steps = 0 }).Classify([input], t.Vocabulary)[0];
        Assert.Null(untuned.ViewsPrediction);
    }

    [Fact]
    public void Views_are_crops_of_at_least_the_smallest_area_asked_for()
    {
        var augmenter = new ViewAugmenter(MinScale: 0.5);
        var rng = new Random(3);
        for (var i = 0; i < 500; i++)
        {
            var c = augmenter.Sample(56, 56, rng);
            // Rounding the side lengths can lose at most about one row and one column.
            Assert.True((c.Height + 1) * (c.Width + 1) >= 0.5 * 56 * 56, $"{c.Height}x{c.Width}");
        }
        Assert.Throws<ArgumentException>(() => new TaptOptions { ViewMinScale = 0 }.Validate());
    }

    [Fact]
    public void Prompts_are_reset_so_a_result_does_not_depend_on_earlier_images()
    {
        using var t = new TinyTapt();
        var defense = new TaptDefense(t.Clip, t.Artifact, Fast);
        var b = new TaptInput(t.Image(2), 9);
        var fresh = defense.Classify([b], t.Vocabulary)[0];
        defense.Classify([new TaptInput(t.Image(1), 3)], t.Vocabulary);
        var afterOther = defense.Classify([b], t.Vocabulary)[0];
        Assert.Equal(fresh.Probabilities, afterOther.Probabilities);
    }

    [Fact]
    public void Tuning_changes_the_prediction_probabilities_and_lowers_the_objective_on_fixed_views()
    {
        using var t = new TinyTapt();
        // All views selected, so every step optimises the same objective.
        var options = Fast with { Steps = 3, Views = 8, SelectionFraction = 1, LearningRate = 1e-2 };
        var result = new TaptDefense(t.Clip, t.Artifact, options).Classify([new TaptInput(t.Image(3), 5)], t.Vocabulary)[0];
        Assert.NotEqual(result.AptProbabilities, result.Probabilities);
        Assert.Equal(3, result.Steps.Count);
        Assert.True(result.Steps[^1].TotalLoss < result.Steps[0].TotalLoss, $"loss {result.Steps[0].TotalLoss} → {result.Steps[^1].TotalLoss}");
        Assert.NotNull(result.Distances);
        Assert.Equal(result.Steps[0].AlignmentClean, result.Distances!.ToCleanReference, 5);
    }

    [Fact]
    public void Zero_steps_predict_with_the_pretrained_prompts()
    {
        using var t = new TinyTapt();
        var r = new TaptDefense(t.Clip, t.Artifact, Fast with { Steps = 0 }).Classify([new TaptInput(t.Image(4), 5)], t.Vocabulary)[0];
        Assert.Equal(r.AptProbabilities, r.Probabilities);
        Assert.Empty(r.Steps);
    }

    [Fact]
    public void Same_seed_gives_the_same_result_and_another_seed_other_views()
    {
        using var t = new TinyTapt();
        var d = new TaptDefense(t.Clip, t.Artifact, Fast);
        var a = d.Classify([new TaptInput(t.Image(8), 11)], t.Vocabulary)[0];
        var b = d.Classify([new TaptInput(t.Image(8), 11)], t.Vocabulary)[0];
        var c = d.Classify([new TaptInput(t.Image(8), 12)], t.Vocabulary)[0];
        Assert.Equal(a.Probabilities, b.Probabilities);
        Assert.NotEqual(a.Probabilities, c.Probabilities);
    }

    [Fact]
    public void Step_callback_reports_every_step_of_every_image_with_top_k()
    {
        using var t = new TinyTapt();
        var seen = new List<TaptStepReport>();
        new TaptDefense(t.Clip, t.Artifact, Fast).Classify([new TaptInput(t.Image(1), 1), new TaptInput(t.Image(2), 2)], t.Vocabulary, seen.Add);
        Assert.Equal(4, seen.Count);
        Assert.All(seen, s => Assert.Equal(4, s.TopK.Count));
        Assert.All(seen, s => Assert.Equal(Fast.SelectedViews, s.SelectedViews.Length));
    }

    [Fact]
    public void Marginal_entropy_of_uniform_predictions_is_log_of_the_label_count()
    {
        var logits = zeros(2, 5, 7);
        var h = TaptDefense.MarginalEntropy(logits);
        Assert.Equal(Math.Log(7), h[0].item<float>(), 5);
        // Two confident views that disagree: the marginal is uniform over their two labels.
        using var confident = (-1000f).ToScalar();
        var split = full(2, 2, 3, confident);
        split[0, 0, 0] = tensor(0f);
        split[0, 1, 1] = tensor(0f);
        split[1, 0, 2] = tensor(0f);
        split[1, 1, 2] = tensor(0f);
        var m = TaptDefense.MarginalEntropy(split);
        Assert.Equal(Math.Log(2), m[0].item<float>(), 5);
        Assert.Equal(0, m[1].item<float>(), 5);
    }

    [Fact]
    public void Artifact_round_trips_and_is_refused_for_another_model()
    {
        using var t = new TinyTapt(attacked: true);
        var path = Path.Combine(Path.GetTempPath(), $"tapt-{Guid.NewGuid():N}.safetensors");
        try
        {
            t.Artifact.Save(path);
            using var loaded = PromptArtifact.Load(path, t.Checkpoint);
            Assert.Equal(t.Artifact.Shape, loaded.Shape);
            Assert.NotNull(loaded.AttackedStatistics);
            var input = new TaptInput(t.Image(3), 3);
            var a = new TaptDefense(t.Clip, t.Artifact, Fast).Classify([input], t.Vocabulary)[0];
            var b = new TaptDefense(t.Clip, loaded, Fast).Classify([input], t.Vocabulary)[0];
            Assert.Equal(a.Probabilities, b.Probabilities);
            using var other = TaptPlatform.Vision.Clip.ClipCheckpoint.Load(GoldenFiles.Case("tiny-quickgelu-legacy-eos"));
            var e = Assert.Throws<PromptArtifactException>(() => PromptArtifact.Load(path, other));
            Assert.Contains("belongs to the model with checksum", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}

public class TunedPromptsInResultTests
{
    [Fact]
    public void Tuned_prompts_are_returned_per_image_when_asked_and_differ_from_the_pretrained_ones()
    {
        using var t = new TinyTapt();
        var options = new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2, LearningRate = 1e-2, ReturnTunedPrompts = true };
        var results = new TaptDefense(t.Clip, t.Artifact, options).Classify([new TaptInput(t.Image(1), 1), new TaptInput(t.Image(2), 2)], t.Vocabulary);
        var pretrained = t.Artifact.Adversarial.State()["visual.0"].data<float>().ToArray();
        Assert.All(results, r => Assert.Equal(t.Artifact.Adversarial.State().Keys.Order(), r.TunedPrompts!.Keys.Order()));
        Assert.NotEqual(pretrained, results[0].TunedPrompts!["visual.0"]);
        Assert.NotEqual(results[0].TunedPrompts!["visual.0"], results[1].TunedPrompts!["visual.0"]);
        var plain = new TaptDefense(t.Clip, t.Artifact, options with { ReturnTunedPrompts = false }).Classify([new TaptInput(t.Image(1), 1)], t.Vocabulary)[0];
        Assert.Null(plain.TunedPrompts);
        Assert.All(plain.Probabilities.Zip(results[0].Probabilities), p => Assert.Equal(p.First, p.Second, 5));
    }
}
