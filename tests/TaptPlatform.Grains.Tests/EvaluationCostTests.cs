using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tests;

/// <summary>An evaluation's cost (images × ε × steps × restarts × EOT, × views when adaptive) and its per-field bounds.</summary>
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
}
