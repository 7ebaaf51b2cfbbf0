namespace TaptPlatform.Contracts;

/// <summary>
/// What an evaluation costs the accelerators, in attack-gradient units:
/// <c>images × ε count × steps × restarts × EOT samples × (views, when the attack goes through TAPT)</c>.
/// Every image is attacked once per ε with <c>steps</c> gradient steps per restart; the adaptive protocol runs the
/// whole test-time tuning (over its views, once per EOT sample) inside every step, so its views multiply the cost;
/// the non-adaptive one attacks APT only and tunes twice per image, which the formula leaves out as small.
/// </summary>
public static class EvaluationCost
{
    /// <summary>The views counted when the prompt configuration leaves them to the artifact (the library's default).</summary>
    public const int DefaultViews = 64;

    /// <summary>The cost of <paramref name="images"/> images; saturates instead of overflowing.</summary>
    public static long Of(EvaluationRequest request, PromptConfiguration? configuration, int images)
    {
        var views = request.Protocol == "adaptive" ? configuration?.Views ?? DefaultViews : 1;
        decimal cost = Math.Max(0, images);
        foreach (var factor in new[] { Math.Max(1, request.Epsilons.IsDefault ? 1 : request.Epsilons.Length), request.Steps, request.Restarts, request.EotSamples, views })
            cost *= Math.Max(1, factor);
        return cost > long.MaxValue ? long.MaxValue : (long)cost;
    }

    /// <summary>Why a cost is refused, naming it, the formula's factors and the limit.</summary>
    public static string Refusal(EvaluationRequest request, PromptConfiguration? configuration, int images, long limit) =>
        $"this evaluation would cost {Of(request, configuration, images)} (images {images} × ε {request.Epsilons.Length} × steps {request.Steps} × restarts {request.Restarts}" +
        $" × EOT {request.EotSamples}{(request.Protocol == "adaptive" ? $" × views {configuration?.Views ?? DefaultViews}" : "")}), over the limit of {limit} per evaluation";
}
