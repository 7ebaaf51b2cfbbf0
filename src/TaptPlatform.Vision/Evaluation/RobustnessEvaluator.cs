using System.Diagnostics;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Evaluation;

public enum EvaluationProtocol
{
    /// <summary>The paper's: adversarial images made once against the APT model, then defended.</summary>
    NonAdaptive,
    /// <summary>The attack goes through the defense (expectation over the random views).</summary>
    Adaptive,
}

/// <param name="AttackViews">
/// Adaptive protocol only: besides the defended output, the attack's logits average in those of this many fresh random
/// views (TAPT's augmentation) under P_adv, so the perturbation must also survive the crops TAPT learns from (0 = off).
/// </param>
public sealed record EvaluationOptions(AttackSettings Attack, EvaluationProtocol Protocol, int Seed = 0, int BatchSize = 16, int EotSamples = 1, int AttackViews = 0)
{
    /// <summary>
    /// Stops the evaluation with <see cref="OperationCanceledException"/>: checked before every batch and on every call of an
    /// attacked model, so inside the attack loop at every step (and every EOT sample), not only between images.
    /// </summary>
    public CancellationToken Cancellation { get; init; }
}

public sealed record MethodAccuracies(double Clip, double Apt, double Tapt);

/// <summary>One image's outcome: label and the prediction of each method, clean and attacked.</summary>
public sealed record ImageOutcome(int Index, int Label, int ClipClean, int AptClean, int TaptClean, int ClipRobust, int AptRobust, int TaptRobust)
{
    /// <summary>The selected views' vote before tuning (<see cref="TaptResult.ViewsPrediction"/>) on the clean and the attacked image; −1 without steps.</summary>
    public int ViewsClean { get; init; } = -1;
    public int ViewsRobust { get; init; } = -1;

    /// <summary>Whether the statistics flag (<see cref="StatisticsDistances.CloserToAttacked"/>) fired on the clean and on the attacked image; null without a PGD-image reference.</summary>
    public bool? FlagClean { get; init; }
    public bool? FlagRobust { get; init; }
}

/// <summary>
/// One evaluated batch: outcomes and the pixels (CHW floats in [0,1], <paramref name="Height"/>×<paramref name="Width"/>) of the clean
/// images and of the adversarial images made against CLIP, APT and (adaptive protocol only) through TAPT.
/// Non-adaptive TAPT is evaluated on APT's adversarial images.
/// </summary>
public sealed record EvaluationBatch(
    IReadOnlyList<ImageOutcome> Outcomes,
    float[][] Clean,
    float[][] ClipAdversarial,
    float[][] AptAdversarial,
    float[][]? TaptAdversarial,
    int Height,
    int Width,
    double Seconds);

public sealed record EvaluationReport(
    int N,
    double Epsilon,
    string Attack,
    string Protocol,
    MethodAccuracies Clean,
    MethodAccuracies Robust,
    string Gradient,
    double SecondsPerImage,
    IReadOnlyList<ImageOutcome> Images)
{
    /// <summary>Accuracy of the selected views' vote before tuning (clean, attacked), a diagnostic of TAPT's signal; null without steps.</summary>
    public (double Clean, double Robust)? ViewsVote { get; init; }

    /// <summary>
    /// Share of clean and of attacked images on which the statistics flag fires (a detector is only useful if the second is
    /// well above the first); null when the artifact has no PGD-image statistics or TAPT ran without steps.
    /// </summary>
    public (double Clean, double Robust)? FlagRates { get; init; }
}

/// <summary>
/// Clean and robust accuracy of plain CLIP (hand-crafted prompts), the pre-trained prompts alone
/// (APT) and TAPT. CLIP and APT are each attacked directly (white-box). TAPT is evaluated either on
/// APT's adversarial images (non-adaptive, the paper's protocol) or under an attack through the whole
/// defense (adaptive).
/// </summary>
public sealed class RobustnessEvaluator(PromptedClip clip, TaptDefense defense, LabelVocabulary vocabulary)
{
    public const string AdaptiveGradient =
        "adaptive: each attack step re-runs the full test-time tuning on the current adversarial image with fresh random views " +
        "(EOT over {0} tuning run(s) per step, logits averaged) and back-propagates the loss of the defended prediction to the pixels with the tuned prompts held fixed; " +
        "the one-step AdamW update lr*g/(|g|+eps) has zero derivative almost everywhere and the view selection is a discrete choice, so this is the gradient of the defense's output (BPDA identity for the update)";
    public const string AttackViewsGradient =
        "; the attacked logits are the mean of the defended output's and those of {0} fresh random views (RandomResizedCrop/flip, as TAPT's) of the current image under P_adv, " +
        "so the perturbation is also pushed through the crops whose vote TAPT's step follows (EOT over views)";
    public const string NonAdaptiveGradient = "non-adaptive: adversarial images made once against the APT model (gradients of CLIP with the pre-trained prompts), then defended by TAPT";

    public EvaluationReport Evaluate(IImageDataset data, IReadOnlyList<int> indices, EvaluationOptions options, Action<int, int>? progress = null) =>
        Evaluate(data, indices, options, progress, null);

    /// <summary>
    /// As <see cref="Evaluate(IImageDataset, IReadOnlyList{int}, EvaluationOptions, Action{int, int}?)"/>, and after each batch hands
    /// <paramref name="onBatch"/> the batch's outcomes with the clean and adversarial pixels (CHW floats in [0,1]), for artifacts.
    /// The callback does not change the results.
    /// </summary>
    public EvaluationReport Evaluate(IImageDataset data, IReadOnlyList<int> indices, EvaluationOptions options, Action<int, int>? progress, Action<EvaluationBatch>? onBatch)
    {
        var outcomes = new List<ImageOutcome>();
        var clock = Stopwatch.StartNew();
        using var cursor = EvaluationCursor.Start(options.Seed);
        for (var start = 0; start < indices.Count; start += options.BatchSize)
        {
            var batch = EvaluateBatch(data, [.. indices.Skip(start).Take(options.BatchSize)], options, cursor, withPixels: onBatch is not null);
            outcomes.AddRange(batch.Outcomes);
            onBatch?.Invoke(batch);
            progress?.Invoke(outcomes.Count, indices.Count);
        }
        return Report(outcomes, options, options.Attack.Create().Name, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// One batch of <see cref="Evaluate(IImageDataset, IReadOnlyList{int}, EvaluationOptions, Action{int, int}?, Action{EvaluationBatch}?)"/>:
    /// the images <paramref name="batch"/> (dataset indices) from where <paramref name="cursor"/> stands, which it advances. Run
    /// batch after batch with one cursor (or its saved state), the outcomes are those of one whole evaluation. Without
    /// <paramref name="withPixels"/> the batch carries no pixels (empty arrays).
    /// </summary>
    public EvaluationBatch EvaluateBatch(IImageDataset data, int[] batch, EvaluationOptions options, EvaluationCursor cursor, bool withPixels)
    {
        options.Cancellation.ThrowIfCancellationRequested();
        var attack = options.Attack.Create();
        var generator = cursor.Generator;
        var augmenter = new ViewAugmenter(MinScale: defense.Options.ViewMinScale);   // the attack's views are the defense's
        var size = clip.ImageSize;
        using var scope = NewDisposeScope();
        var x = data.Images(batch, size).to(clip.Device);
        var labels = batch.Select(data.Label).ToArray();
        var y = tensor(labels.Select(l => (long)l).ToArray()).to(clip.Device);
        var seeds = batch.Select(i => options.Seed * 1_000_003 + i).ToArray();

        LogitsFunction clipFn = Cancellable(img => clip.Classify(img, vocabulary, null), options.Cancellation);
        LogitsFunction aptFn = Cancellable(img => clip.Classify(img, vocabulary, defense.Artifact.Adversarial), options.Cancellation);
        int[] Predict(LogitsFunction f, Tensor img) { using var _ = no_grad(); return f(img).argmax(-1).cpu().data<long>().ToArray().Select(v => (int)v).ToArray(); }
        IReadOnlyList<TaptResult> Tapt(Tensor img) => defense.Classify(Enumerable.Range(0, batch.Length).Select(i => new TaptInput(img[i], seeds[i])).ToList(), vocabulary);

        var batchClock = Stopwatch.StartNew();
        var clipClean = Predict(clipFn, x);
        var aptClean = Predict(aptFn, x);
        var taptClean = Tapt(x);

        var advClip = attack.Perturb(clipFn, x, y, generator);
        var clipRobust = Predict(clipFn, advClip);
        var advApt = attack.Perturb(aptFn, x, y, generator);
        var aptRobust = Predict(aptFn, advApt);

        IReadOnlyList<TaptResult> taptRobust;
        Tensor? advTaptImages = null;
        if (options.Protocol == EvaluationProtocol.NonAdaptive)
        {
            taptRobust = Tapt(advApt);
        }
        else
        {
            var through = Cancellable(ThroughTheDefense(options, seeds, augmenter, aptFn, () => ++cursor.EotCalls), options.Cancellation);
            var advTapt = attack.Perturb(through, x, y, generator);
            taptRobust = Tapt(advTapt);
            advTaptImages = advTapt;
        }
        var outcomes = new ImageOutcome[batch.Length];
        for (var i = 0; i < batch.Length; i++)
            outcomes[i] = new ImageOutcome(batch[i], labels[i], clipClean[i], aptClean[i], taptClean[i].Prediction, clipRobust[i], aptRobust[i], taptRobust[i].Prediction)
            {
                ViewsClean = taptClean[i].ViewsPrediction ?? -1,
                ViewsRobust = taptRobust[i].ViewsPrediction ?? -1,
                FlagClean = Flag(taptClean[i]),
                FlagRobust = Flag(taptRobust[i]),
            };
        static float[][] Rows(Tensor t)
        {
            var flat = t.detach().cpu().contiguous().to_type(ScalarType.Float32);
            var n = (int)flat.shape[0];
            var all = flat.data<float>().ToArray();
            var plane = all.Length / Math.Max(1, n);
            return Enumerable.Range(0, n).Select(i => all.AsSpan(i * plane, plane).ToArray()).ToArray();
        }
        return withPixels
            ? new EvaluationBatch(outcomes, Rows(x), Rows(advClip), Rows(advApt), advTaptImages is null ? null : Rows(advTaptImages), (int)x.shape[2], (int)x.shape[3],
                batchClock.Elapsed.TotalSeconds)
            : new EvaluationBatch(outcomes, [], [], [], null, (int)x.shape[2], (int)x.shape[3], batchClock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The adaptive attack's model: the defended prediction with prompts tuned on fresh random views (the tuned prompts
    /// held fixed in the backward pass), averaged over <see cref="EvaluationOptions.EotSamples"/> tunings; with
    /// <see cref="EvaluationOptions.AttackViews"/> also over that many of TAPT's crops under P_adv.
    /// </summary>
    private LogitsFunction ThroughTheDefense(EvaluationOptions options, int[] seeds, ViewAugmenter augmenter, LogitsFunction aptFn, Func<int> nextCall)
    {
        var size = clip.ImageSize;
        return img =>
        {
            Tensor? sum = null;
            for (var r = 0; r < options.EotSamples; r++)
            {
                var call = nextCall();
                var inputs = Enumerable.Range(0, seeds.Length).Select(i => new TaptInput(img[i].detach(), seeds[i] ^ (call * 7_919))).ToList();
                using var tuned = defense.TunePrompts(inputs, vocabulary);
                var features = clip.ImageFeatures(img, tuned).unsqueeze(1);      // group i = image i
                var text = clip.TextFeatures(vocabulary, tuned);
                var logits = clip.Logits(features, text).squeeze(1);
                if (options.AttackViews > 0)
                {
                    // EOT over TAPT's views: the same crops for every image of the call, differentiable in the pixels.
                    var rng = new Random(unchecked(options.Seed * 7_919 + call));
                    var crops = Enumerable.Range(0, options.AttackViews).Select(_ => augmenter.Sample(size, size, rng)).ToArray();
                    // One forward pass for all crops: [V·B, 3, S, S] → [V, B, C], averaged over the views.
                    var views = cat(crops.Select(c => ViewAugmenter.ApplyToBatch(img, c, size, size)).ToArray(), 0);
                    var viewLogits = aptFn(views).view(options.AttackViews, img.shape[0], -1).mean([0]);
                    logits = (logits + viewLogits) / 2;
                }
                sum = sum is null ? logits : sum + logits;
            }
            return sum! / options.EotSamples;
        };
    }

    /// <summary>Which gradient the attack on TAPT follows under these options (as a report says).</summary>
    public static string GradientOf(EvaluationOptions options) => options.Protocol == EvaluationProtocol.Adaptive
        ? string.Format(System.Globalization.CultureInfo.InvariantCulture, AdaptiveGradient, options.EotSamples)
            + (options.AttackViews > 0 ? string.Format(System.Globalization.CultureInfo.InvariantCulture, AttackViewsGradient, options.AttackViews) : "")
        : NonAdaptiveGradient;

    private static EvaluationReport Report(List<ImageOutcome> outcomes, EvaluationOptions options, string attackName, double seconds)
    {
        double Acc(Func<ImageOutcome, int> f) => outcomes.Count == 0 ? double.NaN : outcomes.Count(o => f(o) == o.Label) / (double)outcomes.Count;
        return new EvaluationReport(
            outcomes.Count,
            options.Attack.Epsilon,
            attackName,
            options.Protocol == EvaluationProtocol.Adaptive ? "adaptive" : "nonadaptive",
            new MethodAccuracies(Acc(o => o.ClipClean), Acc(o => o.AptClean), Acc(o => o.TaptClean)),
            new MethodAccuracies(Acc(o => o.ClipRobust), Acc(o => o.AptRobust), Acc(o => o.TaptRobust)),
            GradientOf(options),
            seconds / Math.Max(1, outcomes.Count),
            outcomes)
        {
            ViewsVote = outcomes.Count > 0 && outcomes.All(o => o.ViewsClean >= 0 && o.ViewsRobust >= 0) ? (Acc(o => o.ViewsClean), Acc(o => o.ViewsRobust)) : null,
            FlagRates = outcomes.Count > 0 && outcomes.All(o => o.FlagClean.HasValue && o.FlagRobust.HasValue)
                ? (outcomes.Count(o => o.FlagClean == true) / (double)outcomes.Count, outcomes.Count(o => o.FlagRobust == true) / (double)outcomes.Count)
                : null,
        };
    }

    /// <summary>The model, checking the token on every call: an attack calls it at every step.</summary>
    private static LogitsFunction Cancellable(LogitsFunction model, CancellationToken ct) => ct.CanBeCanceled
        ? img =>
        {
            ct.ThrowIfCancellationRequested();
            return model(img);
        }
    : model;

    private static bool? Flag(TaptResult r) => r.Distances is { ToAttackedImages: not null } d ? d.CloserToAttacked : null;
}
