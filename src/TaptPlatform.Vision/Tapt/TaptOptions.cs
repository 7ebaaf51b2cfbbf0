namespace TaptPlatform.Vision.Tapt;

/// <summary>How the alignment loss is formed: the authors' code (default) or the paper's formula.</summary>
public enum AlignmentForm
{
    /// <summary>Per layer 0.5·mean|Δμ| + 0.5·mean|Δσ²|, summed over layers (their code).</summary>
    Code,
    /// <summary>(1/L)·Σ_l (‖Δμ‖₁ + ‖Δσ²‖₁) (the paper).</summary>
    Paper,
}

/// <summary>The number format of the test-time step's passes.</summary>
public enum TaptPrecision
{
    /// <summary>Every pass in fp32.</summary>
    Fp32,
    /// <summary>
    /// The scoring pass (all views, no gradient; it only ranks views by confidence) in bfloat16 on a bf16 copy of the
    /// weights; the selected views' forward and backward, APT's and the final prediction stay in fp32.
    /// </summary>
    Bf16Scoring,
    /// <summary>
    /// The scoring pass and the selected views' forward and backward in bfloat16 on the bf16 copy of the weights (the
    /// authors' code runs the step in fp16 autocast): the prompts stay fp32 and are cast into each pass, so their
    /// gradients, the block statistics, the losses and AdamW are fp32; APT's and the final prediction stay fp32.
    /// </summary>
    Bf16,
}

/// <summary>The test-time step's settings. Defaults follow the method note (paper's code where they differ).</summary>
public sealed record TaptOptions
{
    public int Views { get; init; } = 64;
    /// <summary>Smallest crop area of a view, as a fraction of the image (RandomResizedCrop's default: 0.08).</summary>
    public double ViewMinScale { get; init; } = 0.08;
    public double SelectionFraction { get; init; } = 0.1;
    public int Steps { get; init; } = 1;
    public double LearningRate { get; init; } = 5e-4;
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Aligned visual blocks 0..AlignmentLayers−1 (their code: 0..7).</summary>
    public int AlignmentLayers { get; init; } = 8;
    public double AlignmentWeight { get; init; } = 100.0 / 9;
    /// <summary>γ: weight of the adversarial statistics (1 − γ goes to the clean ones).</summary>
    public double Gamma { get; init; } = 0.5;
    public AlignmentForm AlignmentForm { get; init; } = AlignmentForm.Code;
    /// <summary>Their code divides the variance by n; the paper by n − 1.</summary>
    public bool UnbiasedVariance { get; init; }
    /// <summary>Skip autograd for the confidence-scoring pass and back-propagate only through the selected views.</summary>
    public bool EfficientSelection { get; init; } = true;
    public int TopK { get; init; } = 5;
    /// <summary>Copy each image's tuned prompts into its result (audit trails of flagged images).</summary>
    public bool ReturnTunedPrompts { get; init; }

    /// <summary>Number format of the passes (fp32 unless measured otherwise: see the README's speed section).</summary>
    public TaptPrecision Precision { get; init; } = TaptPrecision.Fp32;
    /// <summary>The widest activation one chunk of the scoring pass may make (see TaptDefense.ScoringLogits); tests force small chunks.</summary>
    internal long ScoringChunkBytes { get; init; } = 16L << 20;

    public int SelectedViews => Math.Max(1, (int)(SelectionFraction * Views));

    public void Validate()
    {
        if (Views < 1 || Views > 1024) throw new ArgumentException("views must be in 1..1024");
        if (!(ViewMinScale > 0 && ViewMinScale <= 1)) throw new ArgumentException("the smallest view crop area must be in (0, 1]");
        if (SelectionFraction <= 0 || SelectionFraction > 1) throw new ArgumentException("selection fraction must be in (0, 1]");
        if (Steps < 0 || Steps > 100) throw new ArgumentException("steps must be in 0..100");
        if (LearningRate < 0 || WeightDecay < 0 || AlignmentWeight < 0) throw new ArgumentException("learning rate, weight decay and alignment weight must be non-negative");
        if (Gamma < 0 || Gamma > 1) throw new ArgumentException("gamma must be in [0, 1]");
        if (AlignmentLayers < 0) throw new ArgumentException("alignment layers must be non-negative");
        if (UnbiasedVariance && SelectedViews < 2) throw new ArgumentException("the unbiased variance needs at least two selected views");
    }
}
