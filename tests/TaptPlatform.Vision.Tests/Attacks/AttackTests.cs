using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Attacks;

public sealed class AttackTests : IDisposable
{
    private readonly ClipCheckpoint _ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
    private readonly LabelVocabulary _vocab = new(["sneaker", "running shoe", "leather boot", "dress", "bag"]);

    public void Dispose() => _ckpt.Dispose();

    private (LogitsFunction Model, Tensor X, Tensor Y) Setup()
    {
        var clip = new PromptedClip(_ckpt);
        LogitsFunction f = img => clip.Classify(img, _vocab, null);
        var x = rand([6, 3, 24, 24], generator: new Generator(3));
        Tensor y;
        using (no_grad()) y = f(x).argmax(-1);     // labels the model gets right
        return (f, x, y);
    }

    private static double Accuracy(LogitsFunction f, Tensor x, Tensor y)
    {
        using var _ = no_grad();
        return f(x).argmax(-1).eq(y).to(ScalarType.Float32).mean().item<float>();
    }

    private static double Loss(LogitsFunction f, Tensor x, Tensor y)
    {
        using var _ = no_grad();
        return AttackLosses.CrossEntropy(f(x), y).mean().item<float>();
    }

    [Theory]
    [InlineData(AttackKind.Pgd)]
    [InlineData(AttackKind.Cw)]
    [InlineData(AttackKind.Di)]
    [InlineData(AttackKind.ApgdCe)]
    [InlineData(AttackKind.ApgdT)]
    public void Attack_stays_in_the_eps_ball_and_pixel_range_and_raises_the_loss(AttackKind kind)
    {
        using var scope = NewDisposeScope();
        var (f, x, y) = Setup();
        var eps = 8.0 / 255;
        var adv = new AttackSettings(kind, eps, Steps: 10, StepSize: 2.0 / 255, TargetClasses: 3).Create().Perturb(f, x, y, new Generator(1));
        Assert.True((adv - x).abs().max().item<float>() <= eps + 1e-6, "outside the eps ball");
        Assert.True(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, "outside [0,1]");
        Assert.True(Loss(f, adv, y) > Loss(f, x, y), $"{kind} did not raise the loss");
        Assert.True(Accuracy(f, adv, y) < 1.0, $"{kind} fooled nothing at eps 8/255");
    }

    [Fact]
    public void Cw_margin_is_positive_exactly_when_misclassified()
    {
        var logits = tensor(new float[] { 3, 1, 0, 0, 2, 5 }, [2, 3]);
        var m = AttackLosses.CarliniWagner(logits, tensor(new long[] { 0, 0 }));
        Assert.Equal(-2f, m[0].item<float>(), 5);
        Assert.Equal(5f, m[1].item<float>(), 5);
    }

    [Fact]
    public void Targeted_dlr_loss_rises_as_the_target_logit_overtakes_the_label()
    {
        var y = tensor(new long[] { 0 });
        var t = tensor(new long[] { 1 });
        var before = AttackLosses.DlrTargeted(tensor(new float[] { 4, 1, 0, -1, -2 }, [1, 5]), y, t).item<float>();
        var after = AttackLosses.DlrTargeted(tensor(new float[] { 2, 3, 0, -1, -2 }, [1, 5]), y, t).item<float>();
        Assert.True(after > before);
        Assert.True(after > 0 && before < 0);
    }

    [Fact]
    public void Zero_epsilon_returns_the_clean_images()
    {
        using var scope = NewDisposeScope();
        var (f, x, y) = Setup();
        var adv = new AttackSettings(AttackKind.Pgd, 0, 3).Create().Perturb(f, x, y, new Generator(1));
        Assert.Equal(0f, (adv - x).abs().max().item<float>());
    }
}
