using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

/// <summary>
/// Learnable prompt tokens for one tower, per depth: entry 0 enters with the input, entry l (l ≥ 1)
/// replaces the prompt tokens before encoder block l. Each entry is [n, D] (shared by the batch) or
/// [G, n, D] where G divides the batch (consecutive groups of the batch use one prompt each, which is
/// how several images' views are tuned in one pass). Null entries leave the tokens as they are.
/// </summary>
public sealed class PromptTokens
{
    public PromptTokens(IReadOnlyList<Tensor?> layers)
    {
        if (layers.Count == 0 || layers[0] is null) throw new ArgumentException("prompt tokens need an input-layer entry", nameof(layers));
        Layers = layers;
        Count = (int)layers[0]!.shape[^2];
        foreach (var t in layers)
            if (t is not null && t.shape[^2] != Count) throw new ArgumentException("every prompt layer must have the same number of tokens", nameof(layers));
    }

    public IReadOnlyList<Tensor?> Layers { get; }

    /// <summary>Tokens per layer (n).</summary>
    public int Count { get; }

    public Tensor? At(int layer) => layer < Layers.Count ? Layers[layer] : null;

    /// <summary>Expands an entry to [batch, n, D].</summary>
    internal static Tensor ForBatch(Tensor prompt, long batch)
    {
        if (prompt.dim() == 2) return prompt.unsqueeze(0).expand(batch, -1, -1);
        var groups = prompt.shape[0];
        if (groups == batch) return prompt.alias();
        if (batch % groups != 0) throw new ArgumentException($"prompt groups ({groups}) do not divide the batch ({batch})");
        return prompt.repeat_interleave(batch / groups, 0);
    }
}
