using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;
using TorchSharp;

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
    [InlineData(AttackKind.FabT)]
    [InlineData(AttackKind.Square)]   // score-based: far more queries than a gradient attack's steps on this model
    public void Attack_stays_in_the_eps_ball_and_pixel_range_and_raises_the_loss(AttackKind kind)
    {
        using var scope = NewDisposeScope();
        var (f, x, y) = Setup();
        var eps = 8.0 / 255;
        var adv = new AttackSettings(kind, eps, Steps: 10, StepSize: 2.0 / 255, TargetClasses: 3, Queries: 3000).Create().Perturb(f, x, y, new Generator(1));
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

    [Fact]
    public void Square_is_reproducible_with_a_seed_counts_its_queries_and_stops_querying_fooled_images()
    {
        using var scope = NewDisposeScope();
        var (f, x, y) = Setup();
        var calls = 0L;
        LogitsFunction counted = img =>
        {
            calls += img.shape[0];
            return f(img);
        };
        var eps = 16.0 / 255;
        var square = new SquareAttack(eps, queries: 2000);
        var a = square.Perturb(counted, x, y, new Generator(5));
        var used = square.QueriesUsed;
        var b = new SquareAttack(eps, queries: 2000).Perturb(f, x, y, new Generator(5));
        Assert.Equal(0f, (a - b).abs().max().item<float>());
        // One clean query per image, then each attacked image's queries, none after it was fooled.
        Assert.Equal(x.shape[0] + used.Sum(), calls);
        Assert.All(used, q => Assert.InRange(q, 1, 2001));
        using (no_grad())
        {
            var fooled = f(a).argmax(-1).ne(y).cpu().data<bool>().ToArray();
            for (var i = 0; i < fooled.Length; i++)
                if (!fooled[i]) Assert.Equal(2001, used[i]);      // never fooled: the whole budget
        }
        Assert.True(Accuracy(f, a, y) < Accuracy(f, x, y), "Square fooled nothing at 16/255");
    }

    [Fact]
    public void Square_s_square_shrinks_on_the_reference_schedule()
    {
        Assert.Equal(0.8, SquareAttack.PSelection(0.8, 0));
        Assert.Equal(0.8, SquareAttack.PSelection(0.8, 10));
        Assert.Equal(0.4, SquareAttack.PSelection(0.8, 11));
        Assert.Equal(0.8 / 16, SquareAttack.PSelection(0.8, 1000));
        Assert.Equal(0.8 / 128, SquareAttack.PSelection(0.8, 4999));
        Assert.Equal(0.8 / 512, SquareAttack.PSelection(0.8, 9000));
        var margin = SquareAttack.Margin(tensor(new float[] { 3, 1, 0, 0, 2, 5 }, [2, 3]), tensor(new long[] { 0, 0 }));
        Assert.Equal(new[] { 2f, -5f }, margin.data<float>().ToArray());
    }

    [Fact]
    public void Fab_s_projection_reaches_the_hyperplane_with_the_smallest_linf_step()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        using var spread = 0.2.ToScalar();
        using var low = 0.4.ToScalar();
        var t = (rand([4, 50], generator: g) * spread).add(low, One);          // mid-box: the box does not bind
        var w = randn([4, 50], generator: g);
        var b = (w * t).sum(1).Plus(tensor(new float[] { 0.3f, -0.2f, 0.05f, -0.4f }));
        var d = FabAttack.ProjectLinf(t, w, b);
        Assert.True(((w * t.Plus(d)).sum(1) - b).abs().max().item<float>() < 1e-4, "not on the hyperplane");
        var minimal = ((b - (w * t).sum(1)).abs() / w.abs().sum(1)).data<float>().ToArray();
        var got = d.abs().max(1).values.data<float>().ToArray();
        for (var i = 0; i < 4; i++) Assert.Equal(minimal[i], got[i], 4);
    }

    [Fact]
    public void Fab_t_finds_a_near_minimal_perturbation_where_pgd_spends_its_whole_budget()
    {
        using var scope = NewDisposeScope();
        // A linear two-class model on mid-grey images: the minimal l-inf distance to its boundary is |margin| / |w1 - w0|_1.
        var g = new Generator(11);
        using var scale = 0.1.ToScalar();
        using var grey = 0.5f.ToScalar();
        using var noise = 0.02.ToScalar();
        var weights = randn([2, 3 * 4 * 4], generator: g) * scale;
        LogitsFunction linear = img => img.flatten(1).matmul(weights.t());
        var x = full([3, 3, 4, 4], grey).Plus(rand([3, 3, 4, 4], generator: g) * noise);
        Tensor y;
        using (no_grad()) y = linear(x).argmax(-1);
        var margins = linear(x).detach();
        var correct = margins.gather(1, y.unsqueeze(1)).squeeze(1);
        var other = margins.gather(1, OneMinus(y).unsqueeze(1)).squeeze(1);
        var minimal = ((correct - other) / (weights[0] - weights[1]).abs().sum()).data<float>().ToArray();
        var eps = 0.45;
        Assert.All(minimal, m => Assert.True(m < eps / 2, $"minimal distance {m} too large for this test"));

        var fab = new FabAttack(eps, steps: 100).Perturb(linear, x, y, new Generator(1));
        var pgd = new AttackSettings(AttackKind.Pgd, eps, 20, eps / 4).Create().Perturb(linear, x, y, new Generator(1));
        Assert.Equal(0.0, Accuracy(linear, fab, y));
        Assert.Equal(0.0, Accuracy(linear, pgd, y));
        var fabDistance = (fab - x).abs().flatten(1).max(1).values.data<float>().ToArray();
        var pgdDistance = (pgd - x).abs().flatten(1).max(1).values.data<float>().ToArray();
        for (var i = 0; i < minimal.Length; i++)
        {
            Assert.InRange(fabDistance[i], minimal[i] * 0.999, minimal[i] * 1.1);
            Assert.True(fabDistance[i] < pgdDistance[i], $"image {i}: FAB {fabDistance[i]} vs PGD {pgdDistance[i]}");
        }
    }
}
