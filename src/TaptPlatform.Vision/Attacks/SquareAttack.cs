using TorchSharp;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Attacks;

/// <summary>
/// Square attack, ℓ∞ (Andriushchenko et al., ECCV 2020), as AutoAttack's standard version runs it: score-based (it only
/// reads the model's outputs, never a gradient, so it cannot be misled by masked gradients), margin loss, start from
/// vertical stripes of ±ε, then each query changes one random square of the current best point to ±ε per channel and
/// keeps it when the margin drops; the square's side shrinks on the schedule of <see cref="PSelection"/> from
/// <c>p_init</c> = 0.8 of the image; an image stops being queried once misclassified. Square positions are shared by
/// the batch in a query, as in the reference. Images misclassified at the start are not attacked. Unlike the
/// reference, an image never fooled comes back at its lowest-margin point rather than clean: for a randomised
/// defense the strongest point found is the honest input to hand back.
/// </summary>
public sealed class SquareAttack(double epsilon, int queries, double pInit = 0.8, int restarts = 1) : IAttack
{
    public string Name => $"Square-{queries}";
    public double Epsilon => epsilon;

    /// <summary>Queries each image of the last <see cref="Perturb"/> took (the initial one included; 0: not attacked).</summary>
    public int[] QueriesUsed { get; private set; } = [];

    /// <summary>The share of the image a square covers after <paramref name="iteration"/> queries (the reference's schedule for 10,000).</summary>
    public static double PSelection(double pInit, int iteration) => iteration switch
    {
        > 8000 => pInit / 512,
        > 6000 => pInit / 256,
        > 4000 => pInit / 128,
        > 2000 => pInit / 64,
        > 1000 => pInit / 32,
        > 500 => pInit / 16,
        > 200 => pInit / 8,
        > 50 => pInit / 4,
        > 10 => pInit / 2,
        _ => pInit,
    };

    /// <summary>z_y − max_{j≠y} z_j per image: positive while correctly classified.</summary>
    public static Tensor Margin(Tensor logits, Tensor labels)
    {
        var correct = logits.gather(1, labels.unsqueeze(1)).squeeze(1);
        var isLabel = nn.functional.one_hot(labels, logits.shape[1]).to(ScalarType.Bool);
        var others = logits.masked_fill(isLabel, NegativeInfinity).max(-1).values;
        return correct - others;
    }

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = images.detach();
        var result = x.clone();
        var used = new int[x.shape[0]];
        var robust = Margin(model(x), labels).gt(Zero);
        for (var r = 0; r < restarts; r++)
        {
            var idx = robust.nonzero().squeeze(1);
            if (idx.shape[0] == 0) break;
            var (best, margin, n) = Run(model, x.index_select(0, idx), labels.index_select(0, idx), generator);
            result.index_copy_(0, idx, best);
            var ids = idx.cpu().data<long>().ToArray();
            var counts = n.cpu().data<int>().ToArray();
            for (var i = 0; i < ids.Length; i++) used[ids[i]] += counts[i];
            robust.index_copy_(0, idx, margin.gt(Zero));
        }
        QueriesUsed = used;
        return result.MoveToOuterDisposeScope();
    }

    private (Tensor Best, Tensor Margin, Tensor Queries) Run(LogitsFunction model, Tensor x, Tensor y, Generator generator)
    {
        using var runScope = NewDisposeScope();
        var (b, c, h, w) = ((int)x.shape[0], (int)x.shape[1], (int)x.shape[2], (int)x.shape[3]);
        var features = c * h * w;
        using var eps = epsilon.ToScalar();
        using var twoEps = (2 * epsilon).ToScalar();
        var best = x.Plus(eps * Signs([b, c, 1, w], x.device, generator)).clamp(Zero, One);
        var marginMin = Margin(model(best), y);
        var lossMin = marginMin.clone();                                   // the margin loss: the same numbers
        var n = ones(b, dtype: ScalarType.Int32, device: x.device);
        for (var i = 0; i < queries; i++)
        {
            var idx = marginMin.gt(Zero).nonzero().squeeze(1);
            if (idx.shape[0] == 0) break;
            var xCurr = x.index_select(0, idx);
            var bestCurr = best.index_select(0, idx);
            var s = Math.Clamp((int)Math.Round(Math.Sqrt(PSelection(pInit, i) * features / c)), 1, Math.Min(h, w));
            var vh = RandomInt(h - s, generator);
            var vw = RandomInt(w - s, generator);
            var delta = zeros([c, h, w], device: x.device);
            delta.narrow(1, vh, s).narrow(2, vw, s).copy_((twoEps * Signs([c, 1, 1], x.device, generator)).expand(c, s, s));
            var candidate = bestCurr.Plus(delta).maximum(xCurr.sub(eps)).minimum(xCurr.add(eps, One)).clamp(Zero, One);
            var margin = Margin(model(candidate), y.index_select(0, idx));
            var lossCurr = lossMin.index_select(0, idx);
            var improved = margin.lt(lossCurr);
            lossMin.index_copy_(0, idx, where(improved, margin, lossCurr));
            var take = improved.logical_or(margin.le(Zero));
            marginMin.index_copy_(0, idx, where(take, margin, marginMin.index_select(0, idx)));
            best.index_copy_(0, idx, where(take.view(-1, 1, 1, 1), candidate, bestCurr));
            n.index_add_(0, idx, ones(idx.shape[0], dtype: ScalarType.Int32, device: x.device), One);
            runScope.DisposeEverythingBut(best, marginMin, lossMin, n);
        }
        return (best.MoveToOuterDisposeScope(), marginMin.MoveToOuterDisposeScope(), n.MoveToOuterDisposeScope());
    }

    /// <summary>±1 with equal chance (the reference's <c>sign(2·U − 1)</c>).</summary>
    private static Tensor Signs(long[] shape, Device device, Generator generator) =>
        rand(shape, generator: generator).lt(OneHalf).to(ScalarType.Float32).mul(Two).sub(One).to(device);

    /// <summary>An integer in [0, <paramref name="exclusiveHigh"/>), 0 when that range is empty (the reference's <c>random_int</c>).</summary>
    private static int RandomInt(int exclusiveHigh, Generator generator) =>
        (int)(exclusiveHigh * rand([1], generator: generator).item<float>());
}
