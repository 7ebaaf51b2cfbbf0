using TorchSharp;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Attacks;

/// <summary>Logits [B, C] of images [B, 3, S, S] in [0,1], differentiable with respect to the images.</summary>
public delegate Tensor LogitsFunction(Tensor images01);

/// <summary>An ℓ∞ white-box attack in [0,1] pixel space.</summary>
public interface IAttack
{
    string Name { get; }
    double Epsilon { get; }

    /// <summary>Adversarial images (detached) within ε of <paramref name="images"/> and inside [0,1].</summary>
    Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator);
}

public enum AttackKind { Pgd, Cw, Di, ApgdCe, ApgdT, Square, FabT, AutoAttack, AutoAttackRand }

/// <summary>Settings shared by the attacks; step size defaults to the paper's 1/255; <paramref name="Queries"/> is Square's budget.</summary>
public sealed record AttackSettings(AttackKind Kind, double Epsilon, int Steps, double? StepSize = null, bool RandomStart = true, int Restarts = 1, int TargetClasses = 9,
    int Queries = AttackSettings.DefaultQueries)
{
    /// <summary>AutoAttack's budget for Square.</summary>
    public const int DefaultQueries = 5000;

    public double Alpha => StepSize ?? 1.0 / 255;

    public IAttack Create() => Kind switch
    {
        AttackKind.Pgd => new PgdAttack(Epsilon, Steps, Alpha, RandomStart, AttackLosses.CrossEntropy, "PGD"),
        AttackKind.Cw => new PgdAttack(Epsilon, Steps, Alpha, RandomStart, AttackLosses.CarliniWagner, "CW-PGD"),
        AttackKind.Di => new DiFgsmAttack(Epsilon, Steps, Alpha),
        AttackKind.ApgdCe => new ApgdAttack(Epsilon, Steps, Restarts, targeted: false, TargetClasses),
        AttackKind.ApgdT => new ApgdAttack(Epsilon, Steps, Restarts, targeted: true, TargetClasses),
        AttackKind.Square => new SquareAttack(Epsilon, Queries, restarts: Restarts),
        AttackKind.FabT => new FabAttack(Epsilon, Steps, TargetClasses),
        AttackKind.AutoAttack => Attacks.AutoAttack.Standard(Epsilon, Steps, Queries, TargetClasses),
        AttackKind.AutoAttackRand => Attacks.AutoAttack.Randomised(Epsilon, Steps),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind)),
    };

    public static AttackKind ParseKind(string s) => s.Trim().ToLowerInvariant() switch
    {
        "pgd" => AttackKind.Pgd,
        "cw" => AttackKind.Cw,
        "di" or "di-fgsm" or "difgsm" => AttackKind.Di,
        "apgd" or "apgd-ce" => AttackKind.ApgdCe,
        "apgd-t" => AttackKind.ApgdT,
        "square" => AttackKind.Square,
        "fab-t" or "fab" => AttackKind.FabT,
        "autoattack" => AttackKind.AutoAttack,
        "autoattack-rand" => AttackKind.AutoAttackRand,
        _ => throw new FormatException($"unknown attack '{s}' (use pgd, cw, di, apgd (APGD-CE), apgd-t, fab-t, square, autoattack or autoattack-rand)"),
    };

    public static string Describe(AttackKind kind) => kind switch
    {
        AttackKind.Pgd => "PGD (cross-entropy)",
        AttackKind.Cw => "PGD with the CW margin loss",
        AttackKind.Di => "DI-FGSM (iterative FGSM with input diversity)",
        AttackKind.ApgdCe => "APGD-CE (Croce & Hein 2020)",
        AttackKind.ApgdT => "APGD-T (targeted DLR, Croce & Hein 2020)",
        AttackKind.Square => "Square (score-based, no gradients; Andriushchenko et al. 2020)",
        AttackKind.FabT => "FAB-T (targeted minimal perturbation, Croce & Hein 2020)",
        AttackKind.AutoAttack => "AutoAttack, standard: APGD-CE, APGD-T, FAB-T, Square in turn on what stays robust",
        AttackKind.AutoAttackRand => "AutoAttack for randomised defenses: APGD-CE, APGD-DLR with EOT",
        _ => kind.ToString(),
    };
}

/// <summary>Per-sample losses [B] the attacks maximise.</summary>
public static class AttackLosses
{
    private static readonly Scalar MaskedLogitOffset = 1e4.ToScalar();
    private static readonly Scalar DlrGuard = 1e-12.ToScalar();
    public static Tensor CrossEntropy(Tensor logits, Tensor labels) =>
        nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.None);

    /// <summary>CW margin: max_{j≠y} z_j − z_y (positive once misclassified).</summary>
    public static Tensor CarliniWagner(Tensor logits, Tensor labels)
    {
        using var onehot = nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype);
        using var correct = (logits * onehot).sum(-1);
        using var masked = logits - onehot * MaskedLogitOffset;
        using var other = masked.max(-1).values;
        return other - correct;
    }

    /// <summary>Targeted DLR loss of Croce &amp; Hein: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2).</summary>
    public static Tensor DlrTargeted(Tensor logits, Tensor labels, Tensor targets)
    {
        var sorted = logits.sort(-1).Values;                 // ascending
        var c = logits.shape[1];
        var zy = logits.gather(1, labels.unsqueeze(1)).squeeze(1);
        var zt = logits.gather(1, targets.unsqueeze(1)).squeeze(1);
        var denominator = (sorted.select(1, c - 1) - OneHalf * sorted.select(1, c - 3).Plus(sorted.select(1, c - 4))).add(DlrGuard, One);
        return -(zy - zt) / denominator;
    }

    /// <summary>Untargeted DLR (used for reporting; APGD-CE uses cross-entropy).</summary>
    public static Tensor Dlr(Tensor logits, Tensor labels)
    {
        var sorted = logits.sort(-1).Values;
        var c = logits.shape[1];
        var zy = logits.gather(1, labels.unsqueeze(1)).squeeze(1);
        var top = sorted.select(1, c - 1);
        var second = sorted.select(1, c - 2);
        var isTop = logits.argmax(-1).eq(labels);
        var best = where(isTop, second, top);
        return -(zy - best) / (top - sorted.select(1, c - 3)).add(DlrGuard, One);
    }
}

internal static class Projection
{
    /// <summary>Clip to the ε-ball around x and to [0,1].</summary>
    public static Tensor Project(Tensor candidate, Tensor x, double eps)
    {
        using var e = eps.ToScalar();
        using var lo = x.sub(e).clamp_min(Zero);
        using var hi = x.add(e, One).clamp_max(One);
        return candidate.maximum(lo).minimum(hi);
    }

    public static Tensor Gradient(LogitsFunction model, Tensor xAdv, Func<Tensor, Tensor> loss, out Tensor perSampleLoss, out Tensor logits)
    {
        using var x = xAdv.detach().requires_grad_(true);
        logits = model(x);
        perSampleLoss = loss(logits);
        var grad = autograd.grad([perSampleLoss.sum()], [x])[0];
        perSampleLoss = perSampleLoss.detach();
        logits = logits.detach();
        return grad;
    }
}
