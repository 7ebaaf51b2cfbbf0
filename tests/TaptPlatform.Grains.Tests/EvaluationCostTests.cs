using TaptPlatform.Contracts;
using TaptPlatform.Vision.Attacks;

namespace TaptPlatform.Grains.Tests;

/// <summary>An evaluation's cost (images × ε × the attack's passes per image × EOT, × views when adaptive) and its per-field bounds.</summary>
public sealed class EvaluationCostTests
{
    private static readonly PromptConfiguration Configuration = new("default", "tiny", Views: 16);

    [Fact]
    public void The_cost_multiplies_every_factor_and_the_views_only_through_the_defense()
    {
        var request = new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255, 2.0 / 255, 4.0 / 255], Steps: 100, Restarts: 2, EotSamples: 3);
        Assert.Equal(10L * 3 * 100 * 2 * 3, EvaluationCost.Of(request, Configuration, 10));
        Assert.Equal(10L * 3 * 100 * 2 * 3 * 16, EvaluationCost.Of(request with { Protocol = "adaptive" }, Configuration, 10));
        Assert.Equal(10L * 3 * 100 * 2 * 3 * EvaluationCost.DefaultViews, EvaluationCost.Of(request with { Protocol = "adaptive" }, Configuration with { Views = null }, 10));
        Assert.Equal(0, EvaluationCost.Of(request, Configuration, 0));
        var refusal = EvaluationCost.Refusal(request with { Protocol = "adaptive" }, Configuration, 10, 1000);
        Assert.Contains("288000", refusal, StringComparison.Ordinal);
        Assert.Contains("views 16", refusal, StringComparison.Ordinal);
        Assert.Contains("limit of 1000", refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void The_hostile_maximum_is_refused_field_by_field()
    {
        var ok = new EvaluationRequest("fashion", "default", "apgd-ce", [1.0 / 255], Steps: EvaluationRequest.MaxSteps, Restarts: EvaluationRequest.MaxRestarts,
            Protocol: "adaptive", EotSamples: EvaluationRequest.MaxEotSamples);
        ok.Validate();
        Assert.Throws<TaptRequestException>(() => (ok with { Steps = 10_000 }).Validate());
        Assert.Throws<TaptRequestException>(() => (ok with { Restarts = 100 }).Validate());
        Assert.Throws<TaptRequestException>(() => (ok with { EotSamples = 100 }).Validate());
        // The largest the fields allow still costs more than the default limit per image.
        Assert.True(EvaluationCost.Of(ok with { Epsilons = [.. Enumerable.Range(1, 16).Select(i => i / 255.0)] }, Configuration with { Views = null }, 1) > 10_000_000);
    }

    [Fact]
    public void Each_attack_counts_the_passes_the_core_makes()
    {
        var request = new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255, 2.0 / 255], Steps: 10, Queries: 300);
        Assert.Equal(10, EvaluationCost.PassesPerImage(request));
        // APGD-T and FAB-T: one run per target (9), FAB-T a gradient and a forward pass per iteration.
        Assert.Equal(9 * 10 * 2, EvaluationCost.PassesPerImage(request with { Attack = "apgd-t", Restarts = 2 }));
        Assert.Equal(9 * 2 * 10, EvaluationCost.PassesPerImage(request with { Attack = "fab-t" }));
        // Square: queries per restart, steps unused.
        Assert.Equal(300 * 2, EvaluationCost.PassesPerImage(request with { Attack = "square", Restarts = 2, Steps = 999 }));
        // AutoAttack: APGD-CE + 9 × APGD-T + 9 × 2 × FAB-T + Square's queries; the randomised version APGD-CE + APGD-DLR.
        Assert.Equal(10 + 9 * 10 + 9 * 2 * 10 + 300, EvaluationCost.PassesPerImage(request with { Attack = "autoattack" }));
        Assert.Equal(2 * 10, EvaluationCost.PassesPerImage(request with { Attack = "autoattack-rand" }));
        // Through the defense each query runs the whole tuning: × EOT × views.
        var adaptive = request with { Attack = "square", Protocol = "adaptive", EotSamples = 2 };
        Assert.Equal(5L * 2 * 300 * 2 * 16, EvaluationCost.Of(adaptive, Configuration, 5));
        var refusal = EvaluationCost.Refusal(request with { Attack = "autoattack", Protocol = "adaptive" }, Configuration, 1, 10);
        Assert.Contains("APGD-CE 10 + APGD-T 9×10 + FAB-T 9×2×10 + Square 300", refusal, StringComparison.Ordinal);
        Assert.Contains($"{2L * 580 * 16}", refusal, StringComparison.Ordinal);
        Assert.Contains("queries 300 × restarts 1", EvaluationCost.Refusal(adaptive, Configuration, 1, 10), StringComparison.Ordinal);
    }

    [Fact]
    public void The_contract_names_the_cores_attacks_and_defaults()
    {
        foreach (var name in EvaluationRequest.Attacks) AttackSettings.ParseKind(name);
        Assert.Equal(Enum.GetValues<AttackKind>().Length, EvaluationRequest.Attacks.Length);
        Assert.Equal(AttackSettings.DefaultQueries, EvaluationRequest.DefaultQueries);
        Assert.Equal(AutoAttack.RandomisedEotSamples, EvaluationRequest.RandomisedEotSamples);
        Assert.Equal(EvaluationCost.TargetClasses, new AttackSettings(AttackKind.ApgdT, 0, 1).TargetClasses);
    }

    [Fact]
    public void The_new_attacks_are_validated_with_what_is_wrong()
    {
        var ok = new EvaluationRequest("fashion", "default", "square", [4.0 / 255], Queries: 100);
        foreach (var attack in new[] { "square", "fab-t", "autoattack", "autoattack-rand", "pgd", "apgd-t" })
            (ok with { Attack = attack }).Validate();
        (ok with { Attack = "autoattack-rand", Protocol = "adaptive", EotSamples = 20 }).Validate();
        string Refused(EvaluationRequest r) => Assert.Throws<TaptRequestException>(r.Validate).Message;
        Assert.Contains("square, fab-t, autoattack, autoattack-rand", Refused(ok with { Attack = "autoattack-plus" }), StringComparison.Ordinal);
        Assert.Contains("queries", Refused(ok with { Queries = 0 }), StringComparison.Ordinal);
        Assert.Contains($"1..{EvaluationRequest.MaxQueries}", Refused(ok with { Queries = EvaluationRequest.MaxQueries + 1 }), StringComparison.Ordinal);
        Assert.Contains("restarts must be 1 (got 2)", Refused(ok with { Attack = "autoattack", Restarts = 2 }), StringComparison.Ordinal);
        Assert.Contains("restarts must be 1", Refused(ok with { Attack = "fab-t", Restarts = 3 }), StringComparison.Ordinal);
        Assert.Contains("eot must be in 20..32 (got 4)", Refused(ok with { Attack = "autoattack-rand", Protocol = "adaptive", EotSamples = 4 }), StringComparison.Ordinal);
        (ok with { Restarts = 3 }).Validate();   // Square restarts
    }
}
