namespace TaptPlatform.Vision.Prompts;

/// <summary>The three defensive prompt designs of the TAPT paper.</summary>
public enum PromptDesign
{
    /// <summary>Deep visual prompts only; the text side is the hand-crafted template.</summary>
    V,
    /// <summary>Independent deep text and deep visual prompts (the paper's best).</summary>
    VLI,
    /// <summary>Joint (MaPLe-style): each layer's visual tokens are a learned projection of its text tokens.</summary>
    VLJ,
}

/// <summary>Where prompts go: tokens per layer and how many layers (input + deeper) on each side.</summary>
public sealed record PromptShape(PromptDesign Design, int TokensPerLayer, int VisionDepth, int TextDepth)
{
    public bool HasText => Design is PromptDesign.VLI or PromptDesign.VLJ;

    /// <summary>The paper's layout (2 tokens, depth 9), clamped to the model's layer counts.</summary>
    public static PromptShape For(PromptDesign design, int visionLayers, int textLayers, int tokens = 2, int depth = 9)
    {
        if (tokens < 1) throw new ArgumentOutOfRangeException(nameof(tokens), "at least one prompt token per layer");
        if (depth < 1) throw new ArgumentOutOfRangeException(nameof(depth), "prompt depth must be at least 1");
        var vision = Math.Min(depth, visionLayers);
        var text = design == PromptDesign.V ? 0 : Math.Min(depth, textLayers);
        // Joint prompts project each text layer's tokens, so both sides share one depth.
        if (design == PromptDesign.VLJ) vision = text = Math.Min(vision, text);
        return new PromptShape(design, tokens, vision, text);
    }

    public static PromptDesign ParseDesign(string s) => s.Trim().ToUpperInvariant() switch
    {
        "V" => PromptDesign.V,
        "VLI" => PromptDesign.VLI,
        "VLJ" => PromptDesign.VLJ,
        _ => throw new FormatException($"unknown prompt design '{s}' (use V, VLI or VLJ)"),
    };
}
