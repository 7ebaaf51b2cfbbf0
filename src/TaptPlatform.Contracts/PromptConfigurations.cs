using System.Text.Json.Serialization;

namespace TaptPlatform.Contracts;

/// <summary>
/// When a result is flagged for audit: TAPT changing the plain-CLIP prediction, a confidence below
/// <see cref="MinimumConfidence"/>, and (opt-in) the image's block statistics sitting closer to the PGD-image reference
/// than to the clean one. The last is off by default: on the default model it fires on every image, clean or attacked
/// (README, "Statistics flag"; `tapt eval` reports its rates for any model).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record FlaggingPolicy(
    [property: Id(0)] double MinimumConfidence = 0.5,
    [property: Id(1)] bool FlagChangedPrediction = true,
    [property: Id(2)] bool FlagCloserToAttacked = false);

/// <summary>
/// How a tenant's images are defended: which model (a name in the accelerator silos' model catalog), which prompt
/// artifact (null: the model's default <c>tapt-prompts.safetensors</c>; a name without <see cref="PromptArtifactVersion"/>:
/// an operator's artifact beside the model; with a version: that version of the tenant's own uploaded artifact, whose
/// SHA-256 the platform records in <see cref="PromptArtifactSha256"/> when the configuration is stored), the expected
/// prompt design (checked against the artifact when given), the test-time settings (null: the artifact's own) and the
/// flagging policy.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PromptConfiguration(
    [property: Id(0)] string Name,
    [property: Id(1)] string Model,
    [property: Id(2)] string? PromptArtifact = null,
    [property: Id(3)] string? Design = null,
    [property: Id(4)] int? Views = null,
    [property: Id(5)] int? Steps = null,
    [property: Id(6)] double? LearningRate = null,
    [property: Id(7)] FlaggingPolicy? Flagging = null,
    [property: Id(8)] int Version = 0,
    [property: Id(9)] int? PromptArtifactVersion = null,
    [property: Id(10)] string? PromptArtifactSha256 = null)
{
    /// <summary>True when the artifact is one the tenant uploaded (named with a version), not an operator's.</summary>
    [JsonIgnore]
    public bool UsesTenantArtifact => PromptArtifactVersion is not null;

    /// <summary>The policy in force (the default when none is set).</summary>
    public FlaggingPolicy EffectiveFlagging => Flagging ?? new FlaggingPolicy();

    /// <summary>Throws <see cref="TaptRequestException"/> when a setting is out of range.</summary>
    public void Validate()
    {
        if (!Identifiers.IsValidName(Name)) throw new TaptRequestException($"invalid prompt configuration name '{Name}'");
        if (!Identifiers.IsValidName(Model)) throw new TaptRequestException($"invalid model name '{Model}'");
        if (PromptArtifact is not null && !Identifiers.IsValidName(PromptArtifact)) throw new TaptRequestException($"invalid prompt artifact name '{PromptArtifact}'");
        if (PromptArtifactVersion is not null && PromptArtifact is null) throw new TaptRequestException("promptArtifactVersion needs promptArtifact (the name of one of your prompt artifacts)");
        if (PromptArtifactVersion is < 1) throw new TaptRequestException("promptArtifactVersion must be at least 1");
        if (Design is not null && Design.Trim().ToUpperInvariant() is not ("V" or "VLI" or "VLJ")) throw new TaptRequestException($"unknown prompt design '{Design}' (use V, VLI or VLJ)");
        if (Views is < 1 or > 1024) throw new TaptRequestException("views must be in 1..1024");
        if (Steps is < 0 or > 100) throw new TaptRequestException("steps must be in 0..100");
        if (LearningRate is < 0 or > 10 || (LearningRate is double lr && double.IsNaN(lr))) throw new TaptRequestException("learning rate must be in [0, 10]");
        var f = EffectiveFlagging;
        if (f.MinimumConfidence is < 0 or > 1 || double.IsNaN(f.MinimumConfidence)) throw new TaptRequestException("minimum confidence must be in [0, 1]");
    }
}
