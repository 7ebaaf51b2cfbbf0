using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Tapt;

/// <summary>
/// torch.optim.AdamW (β = 0.9, 0.999, ε = 1e-8, no amsgrad) for the prompts' test-time steps: the same operations in the
/// same order as TorchSharp's own AdamW, so the same numbers, but with every number held. TorchSharp's step turns about
/// eight numbers per parameter into Scalars nothing holds (see <see cref="HeldScalars"/>), and this step runs for
/// every image the platform classifies.
/// </summary>
internal sealed class PromptAdamW
{
    private const double Beta1 = 0.9, Beta2 = 0.999;
    private static readonly Scalar Beta1Scalar = Beta1.ToScalar(), Beta2Scalar = Beta2.ToScalar(), GradWeight = (1 - Beta1).ToScalar(),
        SquareWeight = (1 - Beta2).ToScalar(), Eps = 1e-8.ToScalar();
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _expAvg, _expAvgSq;
    private readonly double _lr, _weightDecay;
    private int _step;

    public PromptAdamW(IEnumerable<Parameter> parameters, double lr, double weightDecay)
    {
        _parameters = [.. parameters];
        // The moments belong to the dispose scope the optimizer is made in, like the parameters they follow.
        _expAvg = [.. _parameters.Select(p => zeros_like(p))];
        _expAvgSq = [.. _parameters.Select(p => zeros_like(p))];
        (_lr, _weightDecay) = (lr, weightDecay);
    }

    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    public void Step()
    {
        using var _ = no_grad();
        _step++;
        using var scope = NewDisposeScope();
        var biasCorrection1 = 1 - Math.Pow(Beta1, _step);
        var biasCorrection2 = 1 - Math.Pow(Beta2, _step);
        using var decay = (1 - _lr * _weightDecay).ToScalar();
        using var rootCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var stepSize = (-(_lr / biasCorrection1)).ToScalar();
        for (var i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            using var grad = p.grad;
            if (grad is null) continue;
            p.mul_(decay);
            _expAvg[i].mul_(Beta1Scalar).add_(grad, alpha: GradWeight);
            _expAvgSq[i].mul_(Beta2Scalar).addcmul_(grad, grad, value: SquareWeight);
            var denom = _expAvgSq[i].sqrt().div(rootCorrection2).add_(Eps, One);
            p.addcdiv_(_expAvg[i], denom, value: stepSize);
        }
    }
}
