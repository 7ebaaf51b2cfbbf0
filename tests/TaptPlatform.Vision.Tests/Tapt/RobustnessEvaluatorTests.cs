using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Tapt;

public class RobustnessEvaluatorTests
{
    private static (TinyTapt T, GreyImageDataset Data) Setup(bool attackedStatistics = false)
    {
        var t = new TinyTapt(attacked: attackedStatistics);
        var rng = new Random(5);
        var pixels = new byte[6 * 24 * 24];
        rng.NextBytes(pixels);
        var images = new LabelledImages(t.Vocabulary.Labels, pixels, new int[6], 24, 24);
        // Label each image with plain CLIP's prediction so CLIP's clean accuracy is exactly 1.
        using var x = images.ToTensor(24);
        using var _ = no_grad();
        var predicted = t.Clip.Classify(x, t.Vocabulary, null).argmax(-1).data<long>().ToArray().Select(v => (int)v).ToArray();
        return (t, new GreyImageDataset(images with { Labels = predicted }));
    }

    [Theory]
    [InlineData(EvaluationProtocol.NonAdaptive)]
    [InlineData(EvaluationProtocol.Adaptive)]
    public void Report_covers_every_image_and_the_attack_hurts_plain_clip(EvaluationProtocol protocol)
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 });
        var report = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data, Enumerable.Range(0, 6).ToArray(),
            new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 16.0 / 255, 5, 4.0 / 255), protocol, Seed: 1, BatchSize: 4));
        Assert.Equal(6, report.N);
        Assert.Equal(6, report.Images.Count);
        Assert.Equal(1.0, report.Clean.Clip);
        Assert.True(report.Robust.Clip < 1.0);
        Assert.All(new[] { report.Clean.Apt, report.Clean.Tapt, report.Robust.Apt, report.Robust.Tapt }, v => Assert.InRange(v, 0, 1));
        Assert.Contains(protocol == EvaluationProtocol.Adaptive ? "adaptive:" : "non-adaptive:", report.Gradient);
    }

    [Fact]
    public void Square_through_the_defense_queries_the_whole_test_time_step_and_reports_its_queries()
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2, Steps = 1 });
        var calls = new Dictionary<string, int>();
        var report = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data, Enumerable.Range(0, 4).ToArray(),
            new EvaluationOptions(new AttackSettings(AttackKind.Square, 16.0 / 255, 1, Queries: 20), EvaluationProtocol.Adaptive, Seed: 1, BatchSize: 4)
            {
                ModelCalls = (method, n) => calls[method] = n,
            });
        Assert.Equal("Square-20", report.Attack);
        // The in-batch activity counts each attacked model's calls: the longest-queried image's queries, plus the robustness
        // check before the attack and the gradient check at the clean images.
        Assert.Equal(["APT", "CLIP", "TAPT"], calls.Keys.Order());
        Assert.InRange(calls["TAPT"], report.Images.Max(o => o.Queries!.Tapt) + 1, report.Images.Max(o => o.Queries!.Tapt) + 2);
        Assert.StartsWith("score-based through the defense", report.Gradient);
        Assert.All(report.Images, o => Assert.NotNull(o.Queries));
        var q = report.QueriesPerImage!;
        // Each image is queried until fooled or for the whole budget (the initial query included); TAPT through its whole step.
        Assert.All(report.Images, o => Assert.InRange(o.Queries!.Tapt, 0, 21));
        Assert.InRange(q.Clip, 1, 21);   // plain CLIP gets every image right here
        Assert.True(q.Tapt > 0, "the defense was never queried");
    }

    [Theory]
    [InlineData(EvaluationProtocol.NonAdaptive)]
    [InlineData(EvaluationProtocol.Adaptive)]
    public void AutoAttack_reports_each_stage_and_the_masking_checks_it_can_make(EvaluationProtocol protocol)
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2, Steps = 1 });
        var report = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data, Enumerable.Range(0, 4).ToArray(),
            new EvaluationOptions(new AttackSettings(AttackKind.AutoAttack, 16.0 / 255, 3, TargetClasses: 2, Queries: 10), protocol, Seed: 1, BatchSize: 4));
        Assert.Equal(["APGD-CE-3", "APGD-T-3", "FAB-T-3", "Square-10"], report.Stages!.Select(s => s.Stage));
        Assert.Equal(report.Robust.Clip, report.Stages![^1].Robust.Clip, 6);    // CLIP is deterministic: the last stage's figure is the final one
        Assert.Equal(protocol == EvaluationProtocol.NonAdaptive, double.IsNaN(report.Stages![0].Robust.Tapt));
        var methods = protocol == EvaluationProtocol.Adaptive ? new[] { "APT", "CLIP", "TAPT" } : ["APT", "CLIP"];
        Assert.Equal(methods, report.Checks.Where(c => c.Name == MaskingChecks.Gradients).Select(c => c.Method).Order());
        Assert.Equal(methods, report.Checks.Where(c => c.Name == MaskingChecks.SquareBeyondWhiteBox).Select(c => c.Method).Order());
        Assert.All(report.Checks.Where(c => c.Name == MaskingChecks.Gradients), c => Assert.False(c.Warning, c.Detail));
    }

    [Fact]
    public void Statistics_flag_rates_count_the_images_the_flag_fires_on_and_need_pgd_image_statistics()
    {
        var (t, data) = Setup(attackedStatistics: true);
        using var _ = t;
        var options = new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 };
        var defense = new TaptDefense(t.Clip, t.Artifact, options);
        var settings = new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 8.0 / 255, 3), EvaluationProtocol.NonAdaptive, Seed: 3, BatchSize: 6);
        var indices = Enumerable.Range(0, 6).ToArray();
        var report = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data, indices, settings);

        // The clean images' flags are those of a direct run (same seeds as the evaluator's).
        using var x = data.Images(indices, t.Clip.ImageSize);
        var direct = defense.Classify(indices.Select(i => new TaptInput(x[i], 3 * 1_000_003 + i)).ToList(), t.Vocabulary);
        Assert.Equal(direct.Select(r => (bool?)r.Distances!.CloserToAttacked), report.Images.Select(o => o.FlagClean));
        Assert.Equal(direct.Count(r => r.Distances!.CloserToAttacked) / 6.0, report.FlagRates!.Value.Clean);
        Assert.Equal(report.Images.Count(o => o.FlagRobust == true) / 6.0, report.FlagRates!.Value.Robust);

        var (plain, plainData) = Setup();
        using var __ = plain;
        var withoutReference = new RobustnessEvaluator(plain.Clip, new TaptDefense(plain.Clip, plain.Artifact, options), plain.Vocabulary)
            .Evaluate(plainData, indices, settings);
        Assert.Null(withoutReference.FlagRates);
    }

    [Fact]
    public void Nonadaptive_tapt_sees_the_same_images_as_a_direct_run_on_apt_adversarials()
    {
        var (t, data) = Setup();
        using var _ = t;
        var options = new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 };
        var defense = new TaptDefense(t.Clip, t.Artifact, options);
        var settings = new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 0, 1), EvaluationProtocol.NonAdaptive, Seed: 3, BatchSize: 6);
        var report = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data, Enumerable.Range(0, 6).ToArray(), settings);
        // With eps = 0 the "adversarial" images are the clean ones, so robust equals clean for every method.
        Assert.Equal(report.Clean, report.Robust);
    }

    [Fact]
    public void Adaptive_attack_with_views_also_attacks_the_crops_and_says_so()
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 });
        var evaluator = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary);
        float[][] Adversarial(int attackViews)
        {
            float[][]? images = null;
            var options = new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 8.0 / 255, 3, 2.0 / 255), EvaluationProtocol.Adaptive, Seed: 1, BatchSize: 6, AttackViews: attackViews);
            var report = evaluator.Evaluate(data, Enumerable.Range(0, 6).ToArray(), options, null, b => images = b.TaptAdversarial);
            Assert.Equal(attackViews > 0, report.Gradient.Contains($"{attackViews} fresh random views", StringComparison.Ordinal));
            return images!;
        }
        var plain = Adversarial(0);
        var withViews = Adversarial(4);
        // Same seeds: only the views term differs, so the perturbations must differ.
        Assert.NotEqual(plain.SelectMany(r => r), withViews.SelectMany(r => r));
    }

    [Fact]
    public void Settings_sweep_reproduces_the_evaluations_own_tapt_figures_and_keeps_each_setting()
    {
        var (t, data) = Setup();
        using var _ = t;
        var options = new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 };
        var evaluator = new RobustnessEvaluator(t.Clip, new TaptDefense(t.Clip, t.Artifact, options), t.Vocabulary);
        var sweep = new TaptSettingsSweep(t.Clip, t.Artifact, t.Vocabulary, [options, options with { LearningRate = 0.5, Steps = 3 }, options with { }], seed: 2);
        var report = evaluator.Evaluate(data, Enumerable.Range(0, 6).ToArray(),
            new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 16.0 / 255, 5, 4.0 / 255), EvaluationProtocol.NonAdaptive, Seed: 2, BatchSize: 4),
            null, sweep.Add);
        var results = sweep.Results;
        Assert.Equal(3, results.Count);
        Assert.Equal(6, results[0].N);
        Assert.Equal(report.Clean.Tapt, results[0].Clean);
        Assert.Equal(report.Robust.Tapt, results[0].Robust);
        Assert.Equal(report.ViewsVote!.Value.Robust, results[0].VoteRobust);
        Assert.Equal(0.5, results[1].Settings.LearningRate);
        Assert.Equal(3, results[1].Settings.Steps);
        // Agreement is with the first setting: none for the first itself, all for a repeat of it.
        Assert.True(double.IsNaN(results[0].SamePrediction) && double.IsNaN(results[0].SameSelection));
        Assert.Equal((1.0, 1.0), (results[2].SamePrediction, results[2].SameSelection));
        Assert.InRange(results[1].SamePrediction, 0, 1);
    }
}
