using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Artifacts;

/// <summary>How a prompt configuration's reference to a tenant's own artifact is checked and pinned when it is stored.</summary>
public static class PromptArtifactReferences
{
    /// <summary>
    /// The configuration with the checksum of the artifact version it names recorded (jobs then fetch exactly that
    /// content); <see cref="TaptRequestException"/> when the version does not exist, was checked against another model or
    /// has another design than the configuration expects. An operator's artifact (no version) records none.
    /// </summary>
    public static async Task<PromptConfiguration> ResolveAsync(IPromptArtifactsGrain artifacts, PromptConfiguration configuration)
    {
        if (!configuration.UsesTenantArtifact) return configuration with { PromptArtifactSha256 = null };
        PromptArtifactInfo artifact;
        try
        {
            artifact = await artifacts.GetAsync(configuration.PromptArtifact!, configuration.PromptArtifactVersion);
        }
        catch (TaptNotFoundException e)
        {
            throw new TaptRequestException($"promptArtifact: {e.Message} (upload it with POST /api/prompt-artifacts/{configuration.PromptArtifact}?model={configuration.Model})");
        }
        if (artifact.Model != configuration.Model)
            throw new TaptRequestException($"prompt artifact '{artifact.Name}' v{artifact.Version} was checked against model '{artifact.Model}', not '{configuration.Model}'");
        if (configuration.Design is { } design && !string.Equals(design.Trim(), artifact.Design, StringComparison.OrdinalIgnoreCase))
            throw new TaptRequestException($"the prompt configuration expects design {design.Trim().ToUpperInvariant()} but prompt artifact '{artifact.Name}' v{artifact.Version} is {artifact.Design}");
        return configuration with { PromptArtifactSha256 = artifact.Sha256 };
    }
}
