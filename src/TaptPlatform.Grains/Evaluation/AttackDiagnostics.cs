using System.Text.Json.Nodes;
using TaptPlatform.Contracts;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Evaluation;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// What one ε's per-image figures add to a robustness report, computed as <c>tapt eval</c> computes them from the same
/// figures: AutoAttack's robust accuracy after each stage (<see cref="AutoAttack.RobustAfterEachStage"/>), Square's mean
/// queries per image, and the masking checks of <see cref="MaskingChecks"/> (input gradients at the clean images; for
/// standard AutoAttack, images Square fooled after the white-box stages).
/// </summary>
public static class AttackDiagnostics
{
    private static readonly (string Key, string Method, Func<EvaluationMethodFigures, int?> Figure, Func<EvaluationMethodFlags, bool?> Flag)[] Methods =
    [
        ("clip", "CLIP", f => f.Clip, f => f.Clip),
        ("apt", "APT", f => f.Apt, f => f.Apt),
        ("tapt", "TAPT", f => f.Tapt, f => f.Tapt),
    ];

    /// <summary>The stages of a multi-stage attack (AutoAttack's versions) in the order they run, else null.</summary>
    public static IReadOnlyList<string>? StageNames(EvaluationRequest request, double epsilon)
    {
        var kind = AttackSettings.ParseKind(request.Attack);
        if (kind is not (AttackKind.AutoAttack or AttackKind.AutoAttackRand)) return null;
        var attack = (AutoAttack)new AttackSettings(kind, epsilon, request.Steps, request.StepSize, Queries: request.Queries).Create();
        return [.. attack.Stages.Select(s => s.Name)];
    }

    /// <summary>
    /// Robust accuracy after each stage per method over the recorded outcomes (a method the attack did not run against: null),
    /// or null when the attack has no stages or nothing is recorded.
    /// </summary>
    public static JsonArray? Stages(EvaluationRequest request, double epsilon, IReadOnlyList<EvaluationImageOutcome> outcomes)
    {
        if (StageNames(request, epsilon) is not { } names || outcomes.Count == 0 || outcomes.Any(o => o.BrokenBy is null)) return null;
        var perMethod = Methods.ToDictionary(m => m.Key, m => outcomes.Any(o => m.Figure(o.BrokenBy!) is null)
            ? null
            : AutoAttack.RobustAfterEachStage([.. outcomes.Select(o => m.Figure(o.BrokenBy!)!.Value)], names.Count));
        var rows = new JsonArray();
        for (var k = 0; k < names.Count; k++)
        {
            var row = new JsonObject { ["stage"] = k + 1, ["attack"] = names[k] };
            foreach (var m in Methods) row[m.Key] = perMethod[m.Key]?[k];
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>Mean queries per image per method of a score-based attack (0 for images wrong before it), or null.</summary>
    public static JsonObject? QueriesPerImage(IReadOnlyList<EvaluationImageOutcome> outcomes)
    {
        if (outcomes.Count == 0 || outcomes.Any(o => o.Queries is null)) return null;
        var mean = new JsonObject();
        foreach (var m in Methods)
            mean[m.Key] = outcomes.Any(o => m.Figure(o.Queries!) is null) ? null : outcomes.Average(o => (double)m.Figure(o.Queries!)!.Value);
        return mean;
    }

    /// <summary>The masking checks one ε's outcomes allow: gradients per measured method, and Square after AutoAttack's white-box stages.</summary>
    public static List<MaskingCheck> Checks(EvaluationRequest request, double epsilon, IReadOnlyList<EvaluationImageOutcome> outcomes)
    {
        var checks = new List<MaskingCheck>();
        if (outcomes.Count == 0) return checks;
        foreach (var m in Methods)
        {
            var measured = outcomes.Where(o => o.ZeroGradient is { } z && m.Flag(z) is not null).ToList();
            if (measured.Count == 0) continue;
            checks.Add(MaskingChecks.OfGradients(m.Method, measured.Count(o => m.Flag(o.ZeroGradient!) == true),
                measured.Count(o => o.NonFiniteGradient is { } f && m.Flag(f) == true), measured.Count));
        }
        if (StageNames(request, epsilon) is { } names && request.Attack == "autoattack" && outcomes.All(o => o.BrokenBy is not null))
            foreach (var m in Methods)
                if (outcomes.All(o => m.Figure(o.BrokenBy!) is not null))
                    checks.Add(MaskingChecks.OfSquareAfterWhiteBox(m.Method, [.. outcomes.Select(o => m.Figure(o.BrokenBy!)!.Value)], names.Count));
        return checks;
    }

    public static JsonObject ToJson(MaskingCheck c, double? epsilon = null)
    {
        var o = new JsonObject { ["check"] = c.Name, ["method"] = c.Method, ["warning"] = c.Warning, ["detail"] = c.Detail };
        if (epsilon is double e) o["epsilon"] = e;
        return o;
    }
}
