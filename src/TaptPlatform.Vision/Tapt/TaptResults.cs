namespace TaptPlatform.Vision.Tapt;

/// <summary>One image to defend: pixels [3, S, S] in [0,1] and the seed of its random views.</summary>
public sealed record TaptInput(TorchSharp.torch.Tensor Image, int Seed);

public readonly record struct LabelScore(int Index, string Label, float Probability);

/// <summary>What the step callback receives after each test-time step of one image.</summary>
public sealed record TaptStepReport(
    int ImageIndex,
    int Step,
    double EntropyLoss,
    double AlignmentAdversarial,
    double AlignmentClean,
    double TotalLoss,
    int[] SelectedViews,
    IReadOnlyList<LabelScore> TopK);

/// <summary>How far the image's block statistics sit from each reference (alignment distance, before tuning).</summary>
public sealed record StatisticsDistances(double ToAdversarialReference, double ToCleanReference, double? ToAttackedImages)
{
    /// <summary>True when the optional PGD-image reference exists and the image is closer to it than to clean images under P_adv.</summary>
    public bool CloserToAttacked => ToAttackedImages is double a && a < ToAdversarialReference;
}

/// <summary>The defended classification of one image, with what an auditor needs.</summary>
public sealed record TaptResult(
    int ImageIndex,
    int BaselinePrediction,
    float[] BaselineProbabilities,
    int AptPrediction,
    float[] AptProbabilities,
    int Prediction,
    float[] Probabilities,
    IReadOnlyList<TaptStepReport> Steps,
    StatisticsDistances? Distances,
    double Seconds)
{
    public float Confidence => Probabilities[Prediction];

    /// <summary>The tuned prompts by name (e.g. "visual.0", "text.3"), when <see cref="TaptOptions.ReturnTunedPrompts"/> is set; for audit records.</summary>
    public IReadOnlyDictionary<string, float[]>? TunedPrompts { get; init; }

    /// <summary>
    /// The selected views' vote before tuning: argmax of their mean probability under P_adv (null without steps).
    /// Entropy minimisation can only pull the original image's prediction towards it, so it bounds what a step can fix.
    /// </summary>
    public int? ViewsPrediction { get; init; }

    /// <summary>Whether the first step selected the same set of views as <paramref name="other"/>'s (order aside).</summary>
    public bool SelectsSameViewsAs(TaptResult other) =>
        Steps.Count > 0 && other.Steps.Count > 0 && Steps[0].SelectedViews.Order().SequenceEqual(other.Steps[0].SelectedViews.Order());
}
