using TorchSharp;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Attacks;

/// <summary>
/// FAB-T, ℓ∞ (Croce &amp; Hein, ICML 2020), as AutoAttack's standard version runs it: targeted at each of the
/// <c>targetClasses</c> most likely other classes in turn, <c>steps</c> iterations, one restart (no random start),
/// α_max 0.1, η 1.05, β 0.9. Each iteration linearises the margin to the target at the current point, projects both
/// the current point and the original image onto that hyperplane within [0,1] (<see cref="ProjectLinf"/>), and steps
/// to a convex combination of the two, biased towards the original by up to α_max; once a point is misclassified it is
/// kept if it is the closest so far and pulled back towards the original by β. A minimal-perturbation attack: it
/// succeeds on an image when its closest adversarial point lies within ε. Images it cannot fool within ε come back at
/// their closest adversarial point projected to the ε-ball (clean when none was found), so the result is always a
/// legal input.
/// </summary>
public sealed class FabAttack(double epsilon, int steps = 100, int targetClasses = 9, double alphaMax = 0.1, double eta = 1.05, double beta = 0.9) : IAttack
{
    // Distances start "infinitely" far (the reference's 1e10); the step's denominators are kept from 0.
    private static readonly Scalar Far = 1e10.ToScalar();
    private static readonly Scalar Tiny = 1e-8.ToScalar();

    public string Name => $"FAB-T-{steps}";
    public double Epsilon => epsilon;

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = images.detach();
        Tensor clean;
        using (no_grad()) clean = model(x).detach();
        var robust = clean.argmax(-1).eq(labels);
        var result = x.clone();
        var closest = x.clone();
        var closestDistance = full(x.shape[0], Far, device: x.device);
        using var eps = epsilon.ToScalar();
        var order = clean.argsort(-1);                                   // ascending: the last is the prediction
        for (var target = 2; target <= Math.Min(targetClasses + 1, (int)clean.shape[1]); target++)
        {
            var idx = robust.nonzero().squeeze(1);
            if (idx.shape[0] == 0) break;
            var xs = x.index_select(0, idx);
            var ys = labels.index_select(0, idx);
            var ts = order.index_select(0, idx).select(1, clean.shape[1] - target);
            var (adv, distance) = Run(model, xs, ys, ts);
            bool[] fooled;
            using (no_grad()) fooled = model(adv).argmax(-1).ne(ys).logical_and(distance.le(eps)).cpu().data<bool>().ToArray();
            var success = tensor(fooled, device: x.device);
            result.index_copy_(0, idx, where(success.view(-1, 1, 1, 1), adv, xs));
            var nearer = distance.lt(closestDistance.index_select(0, idx));
            closest.index_copy_(0, idx, where(nearer.view(-1, 1, 1, 1), adv, closest.index_select(0, idx)));
            closestDistance.index_copy_(0, idx, where(nearer, distance, closestDistance.index_select(0, idx)));
            robust.index_copy_(0, idx, success.logical_not());
        }
        var found = closestDistance.lt(Far).logical_and(robust).view(-1, 1, 1, 1);
        result = where(found, Projection.Project(closest, x, epsilon), result);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>One targeted run: the closest misclassified point found per image and its ℓ∞ distance (1e10: none).</summary>
    private (Tensor Adversarial, Tensor Distance) Run(LogitsFunction model, Tensor x, Tensor y, Tensor targets)
    {
        using var runScope = NewDisposeScope();
        var b = x.shape[0];
        var x0 = x.flatten(1);
        var x1 = x.clone();
        var adv = x.clone();
        var best = full(b, Far, device: x.device);
        using var maxBias = alphaMax.ToScalar();
        using var overshoot = eta.ToScalar();
        using var pullBack = beta.ToScalar();
        for (var i = 0; i < steps; i++)
        {
            // The margin to the target and its gradient at the current point: the hyperplane to cross.
            var dg = Projection.Gradient(model, x1, logits => logits.gather(1, targets.unsqueeze(1)).squeeze(1) - logits.gather(1, y.unsqueeze(1)).squeeze(1),
                out var df, out _).flatten(1);
            using (no_grad())
            {
                var w = dg;
                var offset = (-df).Plus((w * x1.flatten(1)).sum(1));
                var d3 = ProjectLinf(cat([x1.flatten(1), x0], 0), cat([w, w], 0), cat([offset, offset], 0));
                var d1 = d3.narrow(0, 0, b).view_as(x);
                var d2 = d3.narrow(0, b, b).view_as(x);
                var a0 = d3.abs().max(1).values.clamp_min(Tiny);
                var (a1, a2) = (a0.narrow(0, 0, b), a0.narrow(0, b, b));
                var alpha = (a1 / a1.Plus(a2)).clamp(Zero, maxBias).view(-1, 1, 1, 1);
                x1 = (x1.Plus(overshoot * d1) * OneMinus(alpha)).Plus(x.Plus(overshoot * d2) * alpha).clamp(Zero, One);
                var isAdv = model(x1).argmax(-1).ne(y);
                var distance = (x1 - x).abs().flatten(1).max(1).values;
                var nearer = isAdv.logical_and(distance.lt(best));
                adv = where(nearer.view(-1, 1, 1, 1), x1, adv);
                best = where(nearer, distance, best);
                x1 = where(isAdv.view(-1, 1, 1, 1), x.Plus((x1 - x) * pullBack), x1);
            }
            runScope.DisposeEverythingBut(x0, x1, adv, best);
        }
        return (adv.MoveToOuterDisposeScope(), best.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The smallest ℓ∞ step d from each row t with w·(t + d) = b and t + d in [0,1] (as far as the box allows), by the
    /// sort-and-bisect of the reference's <c>projection_linf</c>, with every row's case chosen by <c>where</c>.
    /// </summary>
    public static Tensor ProjectLinf(Tensor t, Tensor w, Tensor b)
    {
        using var scope = NewDisposeScope();
        var dim = t.shape[1];
        var sign = (w * t).sum(1).sub(b).ge(Zero).to(t.dtype).mul(Two).sub(One);
        w = w * sign.unsqueeze(1);
        b = b * sign;
        var a = w.lt(Zero).to(t.dtype);
        var nonzero = w.ne(Zero).to(t.dtype);
        var d = (a - t) * nonzero;
        var p = a - t * (Two * a).sub(One);
        var indp = p.argsort(1);
        b = b - (w * t).sum(1);
        var b0 = (w * d).sum(1);
        var indp2 = indp.flip(1);
        var ws = w.gather(1, indp2);
        var bs2 = -ws * d.gather(1, indp2);
        var s = ws.abs().cumsum(1);
        var sb = bs2.cumsum(1).Plus(b0.unsqueeze(1));
        var last = s.select(1, dim - 1);
        var sbLast = sb.select(1, dim - 1);
        var b2 = sbLast - last * p.gather(1, indp.narrow(1, 0, 1)).squeeze(1);
        var beyond = (b - b2).gt(Zero);
        var between = (b - b0).gt(Zero).logical_and((b - b2).le(Zero));

        var lb = zeros(t.shape[0], dtype: t.dtype, device: t.device);
        using var lastIndex = (dim - 1).ToScalar();
        var ub = full(t.shape[0], lastIndex, dtype: t.dtype, device: t.device);
        for (var i = 0; i < (int)Math.Ceiling(Math.Log2(dim)); i++)
        {
            var mid = lb.Plus(ub).div(Two).floor();
            var midIndex = mid.to(ScalarType.Int64).unsqueeze(1);
            var current = indp.gather(1, midIndex.negative().add(lastIndex, One));
            var b2Mid = sb.gather(1, midIndex) - s.gather(1, midIndex) * p.gather(1, current);
            var c = (b - b2Mid.squeeze(1)).gt(Zero);
            lb = where(c, mid, lb);
            ub = where(c, ub, mid);
        }
        var lbIndex = lb.to(ScalarType.Int64).unsqueeze(1);
        var lambdaBeyond = ((b - sbLast) / -last).clamp_min(Zero).unsqueeze(1);
        var dBeyond = (Two * a).sub(One) * lambdaBeyond;
        var lambdaBetween = ((b - sb.gather(1, lbIndex).squeeze(1)) / -s.gather(1, lbIndex).squeeze(1)).clamp_min(Zero).unsqueeze(1);
        var dBetween = (d.minimum(lambdaBetween) * a).Plus(d.maximum(-lambdaBetween) * OneMinus(a));
        d = where(beyond.unsqueeze(1), dBeyond, where(between.unsqueeze(1), dBetween, d));
        return (d * nonzero).MoveToOuterDisposeScope();
    }
}
