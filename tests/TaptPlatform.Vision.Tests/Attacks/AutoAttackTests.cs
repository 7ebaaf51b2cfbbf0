using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;
using TorchSharp;

namespace TaptPlatform.Vision.Tests.Attacks;

public sealed class AutoAttackTests : IDisposable
{
    private readonly ClipCheckpoint _ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
    private readonly LabelVocabulary _vocab = new(["sneaker", "running shoe", "leather boot", "dress", "bag"]);

    public void Dispose() => _ckpt.Dispose();

    [Fact]
    public void Stages_run_in_order_on_what_stays_robust_and_say_which_one_fooled_each_image()
    {
        using var scope = NewDisposeScope();
        var clip = new PromptedClip(_ckpt);
        LogitsFunction f = img => clip.Classify(img, _vocab, null);
        var x = rand([6, 3, 24, 24], generator: new Generator(3));
        Tensor y;
        using (no_grad()) y = f(x).argmax(-1);
        using var classes = 5.ToScalar();
        y[0] = y[0].add(One, One).remainder(classes);                   // one image wrong before any attack
        var eps = 8.0 / 255;
        var attack = AutoAttack.Standard(eps, steps: 10, queries: 50, targetClasses: 3);
        Assert.Equal(["APGD-CE-10", "APGD-T-10", "FAB-T-10", "Square-50"], attack.Stages.Select(s => s.Name));
        var adv = attack.Perturb(f, x, y, new Generator(1));
        Assert.True((adv - x).abs().max().item<float>() <= eps + 1e-6);
        Assert.Equal(0, attack.BrokenBy[0]);
        Assert.All(attack.BrokenBy.Skip(1), b => Assert.InRange(b, -1, 4));
        Assert.NotEqual(0, attack.BrokenBy.Skip(1).Count(b => b >= 1));
        bool[] wrong;
        using (no_grad()) wrong = f(adv).argmax(-1).ne(y).cpu().data<bool>().ToArray();
        for (var i = 1; i < 6; i++) Assert.Equal(attack.BrokenBy[i] >= 1, wrong[i]);   // a deterministic model: what a stage fooled stays fooled

        var after = AutoAttack.RobustAfterEachStage(attack.BrokenBy, 4);
        Assert.True(after.Zip(after.Skip(1)).All(p => p.First >= p.Second), "robust accuracy rose between stages");
        Assert.Equal(attack.BrokenBy.Count(b => b == -1) / 6.0, after[^1], 6);
    }

    [Fact]
    public void Robust_accuracy_after_each_stage_counts_images_no_earlier_stage_fooled()
    {
        // 8 images: wrong before (0), fooled by stages 1, 2, 2, 4, and three never fooled.
        var after = AutoAttack.RobustAfterEachStage([0, 1, 2, 2, 4, -1, -1, -1], 4);
        Assert.Equal(new[] { 6 / 8.0, 4 / 8.0, 4 / 8.0, 3 / 8.0 }, after);
    }

    [Fact]
    public void The_gradient_check_warns_on_a_quantising_model_and_stays_quiet_on_the_plain_one()
    {
        using var scope = NewDisposeScope();
        var clip = new PromptedClip(_ckpt);
        LogitsFunction plain = img => clip.Classify(img, _vocab, null);
        // A deliberately masked defense: pixels rounded to 8 levels first (zero derivative almost everywhere).
        using var levels = 8.ToScalar();
        LogitsFunction quantised = img => clip.Classify((img * levels).round() / levels, _vocab, null);
        var x = rand([4, 3, 24, 24], generator: new Generator(9));
        Tensor y;
        using (no_grad()) y = plain(x).argmax(-1);
        var tally = new GradientTally();
        tally.Add("plain", plain, x, y);
        tally.Add("quantised", quantised, x, y);
        var checks = tally.Checks().ToDictionary(c => c.Method);
        Assert.False(checks["plain"].Warning, checks["plain"].Detail);
        Assert.True(checks["quantised"].Warning);
        Assert.StartsWith("4 of 4 images have an all-zero input gradient", checks["quantised"].Detail);

        // Per image, in the order added: the first two images go through the masked model, the last two not.
        LogitsFunction mixed = img => cat([quantised(img.narrow(0, 0, 2)), plain(img.narrow(0, 2, 2))], 0);
        tally.Add("mixed", mixed, x, y);
        Assert.Equal([true, true, false, false], tally.PerImage("mixed").Select(f => f.Zero));
        Assert.All(tally.PerImage("mixed"), f => Assert.False(f.NonFinite));
        Assert.Equal(4, tally.PerImage("quantised").Count(f => f.Zero));
        Assert.Empty(tally.PerImage("never tallied"));
    }

    [Fact]
    public void The_other_checks_name_their_numbers()
    {
        var square = MaskingChecks.OfSquareAfterWhiteBox("TAPT", [-1, 4, 1, 4, 0], 4);
        Assert.True(square.Warning);
        Assert.StartsWith("Square fooled 2 of the 3 images APGD-CE, APGD-T and FAB-T left robust (66.7 %; 5 images in all)", square.Detail);
        Assert.False(MaskingChecks.OfSquareAfterWhiteBox("TAPT", [-1, 1, 2, 3, 0], 4).Warning);

        var rises = MaskingChecks.OfEpsilons("TAPT", [(1 / 255.0, 0.8), (4 / 255.0, 0.5), (2 / 255.0, 0.4)]);
        Assert.True(rises.Warning);
        Assert.Contains("rises from 40.0 % at 2/255 to 50.0 % at 4/255", rises.Detail);
        Assert.False(MaskingChecks.OfEpsilons("TAPT", [(1 / 255.0, 0.8), (2 / 255.0, 0.6), (4 / 255.0, 0.6)]).Warning);

        Assert.True(MaskingChecks.OfAutoAttackAndPgd("TAPT", 0.55, 0.50).Warning);
        Assert.False(MaskingChecks.OfAutoAttackAndPgd("TAPT", 0.45, 0.50).Warning);
    }
}
