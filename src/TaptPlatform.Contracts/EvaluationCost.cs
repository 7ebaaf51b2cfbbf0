namespace TaptPlatform.Contracts;

/// <summary>
/// What an evaluation costs the accelerators, in passes of the attacked model:
/// <c>images × ε count × (passes the attack makes per image) × EOT samples × (views, when the attack goes through TAPT)</c>.
/// The adaptive protocol runs the whole test-time tuning (over its views, once per EOT sample) inside every pass, so its
/// views multiply the cost; the non-adaptive one attacks APT only and tunes twice per image, which the formula leaves out
/// as small. Passes per image, as the ML core's attacks make them (a pass is one forward and backward pass, or one forward
/// pass alone: a Square query or FAB's look at its new point; through the defense either runs the whole tuning, so they
/// count the same):
/// <list type="bullet">
/// <item>pgd, cw, di, apgd-ce: steps × restarts;</item>
/// <item>apgd-t: <see cref="TargetClasses"/> targets × steps × restarts (one APGD run per target);</item>
/// <item>fab-t: <see cref="TargetClasses"/> targets × steps × 2 (each iteration a gradient, then a forward pass);</item>
/// <item>square: queries × restarts (no gradient; steps unused);</item>
/// <item>autoattack: APGD-CE steps + APGD-T 9 × steps + FAB-T 9 × 2 × steps + Square queries, one restart each; the later
/// stages attack only the images still robust, the cost counts them in full (an upper bound);</item>
/// <item>autoattack-rand: APGD-CE steps + APGD-DLR steps (its ≥ 20 EOT draws through the defense are the EOT factor).</item>
/// </list>
/// The targeted attacks take the 9 most likely other labels (fewer with a smaller vocabulary; counted as 9). The few
/// passes a run adds around its steps (its start, the checks of the result) are left out as small.
/// </summary>
public static class EvaluationCost
{
    /// <summary>The views counted when the prompt configuration leaves them to the artifact (the library's default).</summary>
    public const int DefaultViews = 64;

    /// <summary>Targets of APGD-T and FAB-T (the core's <c>AttackSettings.TargetClasses</c>, AutoAttack's 9).</summary>
    public const int TargetClasses = 9;

    /// <summary>The cost of <paramref name="images"/> images; saturates instead of overflowing.</summary>
    public static long Of(EvaluationRequest request, PromptConfiguration? configuration, int images)
    {
        decimal cost = Math.Max(0, images);
        foreach (var factor in new[] { Math.Max(1, request.Epsilons.IsDefault ? 1 : request.Epsilons.Length), PassesPerImage(request), request.EotSamples, Views(request, configuration) })
            cost *= Math.Max(1, factor);
        return cost > long.MaxValue ? long.MaxValue : (long)cost;
    }

    /// <summary>The passes of the attacked model the attack makes on one image at one ε (before EOT and views).</summary>
    public static long PassesPerImage(EvaluationRequest request)
    {
        long steps = Math.Max(1, request.Steps), restarts = Math.Max(1, request.Restarts), queries = Math.Max(1, request.Queries);
        return request.Attack switch
        {
            "apgd-t" => TargetClasses * steps * restarts,
            "fab-t" => TargetClasses * 2 * steps,
            "square" => queries * restarts,
            "autoattack" => steps + TargetClasses * steps + TargetClasses * 2 * steps + queries,
            "autoattack-rand" => 2 * steps,
            _ => steps * restarts,
        };
    }

    /// <summary>Why a cost is refused, naming it, the formula's factors and the limit.</summary>
    public static string Refusal(EvaluationRequest request, PromptConfiguration? configuration, int images, long limit) =>
        $"this evaluation would cost {Of(request, configuration, images)} (images {images} × ε {request.Epsilons.Length} × {Passes(request)}" +
        $" × EOT {request.EotSamples}{(request.Protocol == "adaptive" ? $" × views {Views(request, configuration)}" : "")}), over the limit of {limit} per evaluation";

    /// <summary>The attack's passes per image as the refusal names them.</summary>
    private static string Passes(EvaluationRequest r) => r.Attack switch
    {
        "apgd-t" => $"targets {TargetClasses} × steps {r.Steps} × restarts {r.Restarts}",
        "fab-t" => $"targets {TargetClasses} × 2 passes × steps {r.Steps}",
        "square" => $"queries {r.Queries} × restarts {r.Restarts}",
        "autoattack" => $"{PassesPerImage(r)} passes (APGD-CE {r.Steps} + APGD-T {TargetClasses}×{r.Steps} + FAB-T {TargetClasses}×2×{r.Steps} + Square {r.Queries})",
        "autoattack-rand" => $"{PassesPerImage(r)} passes (APGD-CE {r.Steps} + APGD-DLR {r.Steps})",
        _ => $"steps {r.Steps} × restarts {r.Restarts}",
    };

    private static int Views(EvaluationRequest request, PromptConfiguration? configuration) =>
        request.Protocol == "adaptive" ? configuration?.Views ?? DefaultViews : 1;
}
