using System.Globalization;

namespace TaptPlatform.Vision.Evaluation;

/// <summary>One sanity check of an evaluation: its name, whether it warns, and the numbers it looked at.</summary>
public sealed record MaskingCheck(string Name, string Method, bool Warning, string Detail);

/// <summary>
/// The checks AutoAttack's <c>checks.py</c> runs for signs of gradient masking (Croce &amp; Hein 2020; Carlini et al. 2019):
/// gradients that are zero or not finite at the clean images, a black-box attack (Square) that fools images the
/// white-box attacks before it could not, robust accuracy that does not fall as ε grows, and AutoAttack scoring a
/// defense higher than plain PGD. A warning names its numbers.
/// </summary>
public static class MaskingChecks
{
    public const string Gradients = "gradients";
    public const string SquareBeyondWhiteBox = "square-beyond-white-box";
    public const string MonotoneInEpsilon = "monotone-in-epsilon";
    public const string AutoAttackBelowPgd = "autoattack-below-pgd";

    public static MaskingCheck OfGradients(string method, int zero, int nonFinite, int images)
    {
        var warn = zero > 0 || nonFinite > 0;
        return new(Gradients, method, warn, string.Create(CultureInfo.InvariantCulture,
            $"{zero} of {images} images have an all-zero input gradient and {nonFinite} a non-finite one") +
            (warn ? ": the attack's gradients may not reflect the model (masking); trust the score-based attack's figure" : ""));
    }

    /// <summary>From AutoAttack's per-image outcomes: how many images Square (stage <paramref name="squareStage"/>) fooled after the white-box stages.</summary>
    public static MaskingCheck OfSquareAfterWhiteBox(string method, IReadOnlyList<int> brokenBy, int squareStage)
    {
        var bySquare = brokenBy.Count(b => b == squareStage);
        // What reached Square: the images it fooled and those no stage fooled (-1); 0 was wrong before any attack.
        var reached = brokenBy.Count(b => b == squareStage || b == -1);
        return new(SquareBeyondWhiteBox, method, bySquare > 0, string.Create(CultureInfo.InvariantCulture,
            $"Square fooled {bySquare} of the {reached} images APGD-CE, APGD-T and FAB-T left robust ({bySquare / (double)Math.Max(1, reached):P1}; {brokenBy.Count} images in all)") +
            (bySquare > 0 ? ": a black-box attack beating the white-box ones is a sign of gradient masking" : ""));
    }

    public static MaskingCheck OfEpsilons(string method, IReadOnlyList<(double Epsilon, double Robust)> byEpsilon)
    {
        var sorted = byEpsilon.OrderBy(e => e.Epsilon).ToList();
        var rises = sorted.Zip(sorted.Skip(1)).Where(p => p.Second.Robust > p.First.Robust).ToList();
        string Eps(double e) => string.Create(CultureInfo.InvariantCulture, $"{e * 255:G4}/255");
        return new(MonotoneInEpsilon, method, rises.Count > 0, rises.Count == 0
            ? $"robust accuracy falls (or stays) as ε grows over {string.Join(", ", sorted.Select(e => Eps(e.Epsilon)))}"
            : string.Join("; ", rises.Select(p => string.Create(CultureInfo.InvariantCulture,
                $"robust accuracy rises from {p.First.Robust:P1} at {Eps(p.First.Epsilon)} to {p.Second.Robust:P1} at {Eps(p.Second.Epsilon)}"))) + ": a stronger budget cannot help the defense");
    }

    public static MaskingCheck OfAutoAttackAndPgd(string method, double autoAttack, double pgd) =>
        new(AutoAttackBelowPgd, method, autoAttack > pgd, string.Create(CultureInfo.InvariantCulture,
            $"robust accuracy {autoAttack:P1} under AutoAttack, {pgd:P1} under PGD") +
            (autoAttack > pgd ? ": the stronger attack scoring higher suggests its gradients are misled" : ""));
}
