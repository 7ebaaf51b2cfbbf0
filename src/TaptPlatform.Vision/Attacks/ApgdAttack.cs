using TorchSharp;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Attacks;

/// <summary>
/// APGD (Croce &amp; Hein, ICML 2020), ℓ∞: step size 2ε halved at checkpoints w_j when the loss
/// increased in fewer than 75% of the steps since the last checkpoint or the step size was not reduced
/// and the best loss did not improve (then restart from the best point); momentum 0.75; checkpoint gaps
/// start at 0.22·N and shrink by 0.03·N to at least 0.06·N. APGD-CE maximises cross-entropy; APGD-T
/// maximises the targeted DLR loss for each of the top <c>targetClasses</c> other classes in turn.
/// Each run attacks only the samples still classified correctly. Samples never fooled come back at
/// their highest-loss point, the strongest input to hand to a defense.
/// With <c>dlr</c>, the untargeted version maximises the DLR loss (AutoAttack's version for randomised defenses).
/// </summary>
public sealed class ApgdAttack(double epsilon, int steps, int restarts, bool targeted, int targetClasses, bool dlr = false) : IAttack
{
    private const double Rho = 0.75;

    public string Name => targeted ? $"APGD-T-{steps}" : dlr ? $"APGD-DLR-{steps}" : $"APGD-CE-{steps}";
    public double Epsilon => epsilon;

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = images.detach();
        var result = x.clone();
        Tensor clean;
        using (no_grad()) clean = model(x).detach();
        var robust = clean.argmax(-1).eq(labels);                  // still correct
        var bestLoss = full(x.shape[0], NegativeInfinity, dtype: ScalarType.Float32, device: x.device);
        var runs = targeted
            ? Enumerable.Range(2, Math.Min(targetClasses, (int)clean.shape[1] - 1)).SelectMany(t => Enumerable.Repeat(t, restarts))
            : Enumerable.Repeat(0, restarts);
        foreach (var target in runs)
        {
            var idx = robust.nonzero().squeeze(1);
            if (idx.shape[0] == 0) break;
            var xs = x.index_select(0, idx);
            var ys = labels.index_select(0, idx);
            Func<Tensor, Tensor> loss;
            if (targeted)
            {
                var sorted = clean.index_select(0, idx).argsort(-1);
                var t = sorted.select(1, clean.shape[1] - target);
                loss = l => AttackLosses.DlrTargeted(l, ys, t);
            }
            else if (dlr) loss = l => AttackLosses.Dlr(l, ys);
            else loss = l => AttackLosses.CrossEntropy(l, ys);
            var (fooledAdv, fooled, maxLossPoint, maxLoss) = Run(model, xs, ys, loss, generator);
            // Fooled samples take their adversarial point; the others keep their highest-loss point so far.
            var fooledFull = zeros_like(robust).index_put_(fooled, idx);
            var better = maxLoss.gt(bestLoss.index_select(0, idx)).logical_and(fooled.logical_not());
            var take = where(fooled, ones_like(fooled), better);
            var chosen = where(fooled.view(-1, 1, 1, 1), fooledAdv, maxLossPoint);
            var takeIdx = idx.masked_select(take);
            result.index_copy_(0, takeIdx, chosen.index_select(0, take.nonzero().squeeze(1)));
            bestLoss.index_copy_(0, takeIdx, where(fooled, full_like(maxLoss, PositiveInfinity), maxLoss).masked_select(take));
            robust = robust.logical_and(fooledFull.logical_not());
        }
        return result.MoveToOuterDisposeScope();
    }

    private (Tensor FooledAdv, Tensor Fooled, Tensor Best, Tensor BestLoss) Run(LogitsFunction model, Tensor x, Tensor y, Func<Tensor, Tensor> loss, Generator generator)
    {
        var b = x.shape[0];
        using var runScope = NewDisposeScope();
        var n2 = Math.Max((int)(0.22 * steps), 1);
        var nMin = Math.Max((int)(0.06 * steps), 1);
        var decrease = Math.Max((int)(0.03 * steps), 1);

        // Random start on the ε-sphere direction, as the reference implementation.
        using var eps = epsilon.ToScalar();
        using var twoEps = (2 * epsilon).ToScalar();
        var t = rand(x.shape, generator: generator).to(x.device).mul(Two).sub(One);
        var tMax = t.abs().flatten(1).max(1).values.view(-1, 1, 1, 1);
        var xAdv = x.Plus(eps * t / tMax).clamp(Zero, One);
        var xBest = xAdv.clone();
        var xBestAdv = xAdv.clone();
        var grad = Projection.Gradient(model, xAdv, loss, out var lossIndiv, out var logits);
        var fooled = logits.argmax(-1).ne(y);
        var lossBest = lossIndiv.clone();
        var gradBest = grad.clone();
        var stepSize = full([b, 1, 1, 1], twoEps, device: x.device);
        var xOld = xAdv.clone();
        var k = n2;
        var counter = 0;
        var lossBestLastCheck = lossBest.clone();
        var reducedLastCheck = zeros(b, dtype: ScalarType.Bool, device: x.device);
        var increases = zeros(b, device: x.device);
        var previousLoss = lossIndiv.clone();

        for (var i = 0; i < steps; i++)
        {
            using (no_grad())
            {
                var momentumTerm = xAdv - xOld;
                xOld = xAdv;
                var a = i > 0 ? 0.75 : 1.0;
                using var zWeight = a.ToScalar();
                using var momentumWeight = (1 - a).ToScalar();
                var z = Projection.Project(xAdv.Plus(stepSize * grad.sign()), x, epsilon);
                xAdv = Projection.Project(xAdv.Plus((z - xAdv) * zWeight).Plus(momentumTerm * momentumWeight), x, epsilon);
            }
            grad = Projection.Gradient(model, xAdv, loss, out lossIndiv, out logits);
            using (no_grad())
            {
                var nowFooled = logits.argmax(-1).ne(y);
                xBestAdv = where(nowFooled.view(-1, 1, 1, 1), xAdv, xBestAdv);
                fooled = fooled.logical_or(nowFooled);
                increases.PlusInPlace(lossIndiv.gt(previousLoss).to(ScalarType.Float32));
                previousLoss = lossIndiv;
                var improved = lossIndiv.gt(lossBest);
                var im4 = improved.view(-1, 1, 1, 1);
                xBest = where(im4, xAdv, xBest);
                gradBest = where(im4, grad, gradBest);
                lossBest = where(improved, lossIndiv, lossBest);
                if (++counter == k)
                {
                    using var limit = (k * Rho).ToScalar();
                    var oscillating = increases.le(limit);
                    var noImprovement = reducedLastCheck.logical_not().logical_and(lossBestLastCheck.ge(lossBest));
                    var reduce = oscillating.logical_or(noImprovement);
                    reducedLastCheck = reduce;
                    lossBestLastCheck = lossBest.clone();
                    var r4 = reduce.view(-1, 1, 1, 1);
                    stepSize = where(r4, stepSize.div(Two), stepSize);
                    xAdv = where(r4, xBest, xAdv);
                    grad = where(r4, gradBest, grad);
                    k = Math.Max(k - decrease, nMin);
                    counter = 0;
                    increases.zero_();
                }
            }
            // Keep the state, free this step's temporaries (long runs on large images stay bounded).
            runScope.DisposeEverythingBut(xAdv, xOld, xBest, xBestAdv, grad, gradBest, lossBest, stepSize, fooled,
                previousLoss, reducedLastCheck, lossBestLastCheck, increases);
        }
        return (xBestAdv.MoveToOuterDisposeScope(), fooled.MoveToOuterDisposeScope(), xBest.MoveToOuterDisposeScope(), lossBest.MoveToOuterDisposeScope());
    }
}
