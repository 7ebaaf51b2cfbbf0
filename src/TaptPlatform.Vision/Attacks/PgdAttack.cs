using TorchSharp;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Attacks;

/// <summary>Projected gradient descent (Madry et al.) with sign steps, optional uniform random start.</summary>
public sealed class PgdAttack(double epsilon, int steps, double stepSize, bool randomStart, Func<Tensor, Tensor, Tensor> loss, string name) : IAttack
{
    public string Name => $"{name}-{steps}";
    public double Epsilon => epsilon;

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = images.detach();
        var adv = x.clone();
        if (randomStart)
        {
            using var eps = epsilon.ToScalar();
            using var twoEps = (2 * epsilon).ToScalar();
            var noise = rand(x.shape, generator: generator).to(x.device).mul(twoEps).sub(eps);
            adv = Projection.Project(x.Plus(noise), x, epsilon);
        }
        using var step = stepSize.ToScalar();
        for (var i = 0; i < steps; i++)
        {
            var grad = Projection.Gradient(model, adv, l => loss(l, labels), out _, out _);
            adv = Projection.Project(adv.Plus(step * grad.sign()), x, epsilon);
            scope.DisposeEverythingBut(x, adv);
        }
        return adv.detach().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// DI-FGSM (Xie et al. 2019): iterative FGSM where, with probability p, each step sees the image
/// randomly resized to [S, 1.1·S) and randomly padded to 1.1·S, then resized back to the model's S.
/// </summary>
public sealed class DiFgsmAttack(double epsilon, int steps, double stepSize, double diversityProbability = 0.5) : IAttack
{
    public string Name => $"DI-FGSM-{steps}";
    public double Epsilon => epsilon;

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = images.detach();
        var adv = x.clone();
        var size = (int)x.shape[^1];
        var padded = (int)Math.Round(size * 330.0 / 299);
        var rng = new Random((int)(generator.initial_seed() & 0x7fffffff));
        Tensor Diverse(Tensor input)
        {
            if (rng.NextDouble() >= diversityProbability || padded <= size) return input;
            var r = rng.Next(size, padded);
            var resized = nn.functional.interpolate(input, [r, r], mode: InterpolationMode.Nearest);
            var rem = padded - r;
            var top = rng.Next(0, rem + 1);
            var left = rng.Next(0, rem + 1);
            var pad = nn.functional.pad(resized, [left, rem - left, top, rem - top], value: 0);
            return nn.functional.interpolate(pad, [size, size], mode: InterpolationMode.Bilinear, align_corners: false);
        }
        for (var i = 0; i < steps; i++)
        {
            using var step = stepSize.ToScalar();
            var grad = Projection.Gradient(z => model(Diverse(z)), adv, l => AttackLosses.CrossEntropy(l, labels), out _, out _);
            adv = Projection.Project(adv.Plus(step * grad.sign()), x, epsilon);
            scope.DisposeEverythingBut(x, adv);
        }
        return adv.detach().MoveToOuterDisposeScope();
    }
}
