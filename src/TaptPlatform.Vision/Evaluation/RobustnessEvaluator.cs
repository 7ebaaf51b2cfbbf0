using System.Diagnostics;
using TorchSharp;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

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

    /// <summary>
    /// Told at every call of an attacked model (<c>CLIP</c>, <c>APT</c> or <c>TAPT</c>) how many calls of it the current batch
    /// has made: the only sign of life inside a long batch (Square through the defense runs for hours). Must return at once.
    /// </summary>
    public Action<string, int>? ModelCalls { get; init; }
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

    /// <summary>A score-based attack's queries on this image against each method (0: not attacked, already wrong); null for gradient attacks.</summary>
    public MethodQueries? Queries { get; init; }

    /// <summary>AutoAttack only: the 1-based stage that fooled the image per method (0: wrong before any attack, −1: none did).</summary>
    public MethodStages? BrokenBy { get; init; }
}

/// <summary>Queries of a score-based attack per method (per image, or their mean over images).</summary>
public sealed record MethodQueries(double Clip, double Apt, double Tapt);

/// <summary>One integer per method (which AutoAttack stage fooled an image).</summary>
public sealed record MethodStages(int Clip, int Apt, int Tapt);

/// <summary>Robust accuracy of each method after one stage of a multi-stage attack.</summary>
public sealed record StageAccuracy(string Stage, MethodAccuracies Robust);

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

    /// <summary>Mean queries per image of a score-based attack, per method; null for gradient attacks.</summary>
    public MethodQueries? QueriesPerImage { get; init; }

    /// <summary>AutoAttack only: robust accuracy after each stage, per method, as the attack's own draws judged it.</summary>
    public IReadOnlyList<StageAccuracy>? Stages { get; init; }

    /// <summary>The gradient-masking checks this run can make (see <see cref="MaskingChecks"/>).</summary>
    public IReadOnlyList<MaskingCheck> Checks { get; init; } = [];
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
    public const string ScoreBasedThroughTheDefense =
        "score-based through the defense: every query runs the full test-time tuning on the queried image with fresh random views (EOT over {0} tuning run(s) per query) " +
        "and reads the defended probabilities; no gradient is used, so gradient masking cannot hide a weakness";
    public const string ScoreBasedNonAdaptive = "score-based, non-adaptive: adversarial images found by querying the APT model's probabilities, then defended by TAPT";

    /// <summary>A method the attack did not run against (TAPT under the non-adaptive protocol).</summary>
    public const int NotAttacked = int.MinValue;

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
        var gradients = new GradientTally();
        for (var start = 0; start < indices.Count; start += options.BatchSize)
        {
            var batch = EvaluateBatch(data, [.. indices.Skip(start).Take(options.BatchSize)], options, cursor, withPixels: onBatch is not null, gradients);
            outcomes.AddRange(batch.Outcomes);
            onBatch?.Invoke(batch);
            progress?.Invoke(outcomes.Count, indices.Count);
        }
        var attack = options.Attack.Create();
        return Report(outcomes, options, attack, clock.Elapsed.TotalSeconds) with { Checks = Checks(outcomes, attack, gradients) };
    }

    /// <summary>
    /// One batch of <see cref="Evaluate(IImageDataset, IReadOnlyList{int}, EvaluationOptions, Action{int, int}?, Action{EvaluationBatch}?)"/>:
    /// the images <paramref name="batch"/> (dataset indices) from where <paramref name="cursor"/> stands, which it advances. Run
    /// batch after batch with one cursor (or its saved state), the outcomes are those of one whole evaluation. Without
    /// <paramref name="withPixels"/> the batch carries no pixels (empty arrays). With <paramref name="gradients"/>, the input
    /// gradients of every attacked model at the clean images are counted there (the first masking check).
    /// </summary>
    public EvaluationBatch EvaluateBatch(IImageDataset data, int[] batch, EvaluationOptions options, EvaluationCursor cursor, bool withPixels,
        GradientTally? gradients = null)
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

        LogitsFunction clipFn = Watched("CLIP", img => clip.Classify(img, vocabulary, null), options);
        LogitsFunction aptFn = Watched("APT", img => clip.Classify(img, vocabulary, defense.Artifact.Adversarial), options);
        int[] Predict(LogitsFunction f, Tensor img) { using var _ = no_grad(); return f(img).argmax(-1).cpu().data<long>().ToArray().Select(v => (int)v).ToArray(); }
        IReadOnlyList<TaptResult> Tapt(Tensor img) => defense.Classify(Enumerable.Range(0, batch.Length).Select(i => new TaptInput(img[i], seeds[i])).ToList(), vocabulary);

        var batchClock = Stopwatch.StartNew();
        var clipClean = Predict(clipFn, x);
        var aptClean = Predict(aptFn, x);
        var taptClean = Tapt(x);

        gradients?.Add("CLIP", clipFn, x, y);
        gradients?.Add("APT", aptFn, x, y);
        var advClip = attack.Perturb(clipFn, x, y, generator);
        var (clipQueries, clipStages) = (QueriesOf(attack, batch.Length), StagesOf(attack, batch.Length));
        var clipRobust = Predict(clipFn, advClip);
        var advApt = attack.Perturb(aptFn, x, y, generator);
        var (aptQueries, aptStages) = (QueriesOf(attack, batch.Length), StagesOf(attack, batch.Length));
        var aptRobust = Predict(aptFn, advApt);
        var taptQueries = new int[batch.Length];
        int[]? taptStages = null;   // non-adaptive: TAPT is not attacked, only handed APT's adversarial images

        IReadOnlyList<TaptResult> taptRobust;
        Tensor? advTaptImages = null;
        if (options.Protocol == EvaluationProtocol.NonAdaptive)
        {
            taptRobust = Tapt(advApt);
        }
        else
        {
            var through = Watched("TAPT", ThroughTheDefense(options, seeds, augmenter, aptFn, () => ++cursor.EotCalls), options);
            gradients?.Add("TAPT", through, x, y);
            var advTapt = attack.Perturb(through, x, y, generator);
            (taptQueries, taptStages) = (QueriesOf(attack, batch.Length), StagesOf(attack, batch.Length));
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
                Queries = attack is SquareAttack ? new MethodQueries(clipQueries[i], aptQueries[i], taptQueries[i]) : null,
                BrokenBy = attack is AutoAttack ? new MethodStages(clipStages[i], aptStages[i], taptStages?[i] ?? NotAttacked) : null,
            };
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
                // Attacks query subsets of the batch (the images still robust): fresh views per call whatever the size.
                var inputs = Enumerable.Range(0, (int)img.shape[0]).Select(i => new TaptInput(img[i].detach(), seeds[i % seeds.Length] ^ (call * 7_919))).ToList();
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
                    logits = logits.Plus(viewLogits).div(Two);
                }
                sum = sum is null ? logits : sum.Plus(logits);
            }
            using var samples = options.EotSamples.ToScalar();
            return sum!.div(samples);
        };
    }

    /// <summary>Which gradient (or none: a score-based attack) the attack on TAPT follows under these options (as a report says).</summary>
    public static string GradientOf(EvaluationOptions options)
    {
        var culture = System.Globalization.CultureInfo.InvariantCulture;
        var scoreBased = options.Attack.Kind == AttackKind.Square;
        if (options.Protocol != EvaluationProtocol.Adaptive) return scoreBased ? ScoreBasedNonAdaptive : NonAdaptiveGradient;
        if (scoreBased) return string.Format(culture, ScoreBasedThroughTheDefense, options.EotSamples);
        return string.Format(culture, AdaptiveGradient, options.EotSamples)
            + (options.AttackViews > 0 ? string.Format(culture, AttackViewsGradient, options.AttackViews) : "");
    }

    private static EvaluationReport Report(List<ImageOutcome> outcomes, EvaluationOptions options, IAttack attack, double seconds)
    {
        var attackName = attack.Name;
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
            QueriesPerImage = outcomes.Count > 0 && outcomes.All(o => o.Queries is not null)
                ? new MethodQueries(outcomes.Average(o => o.Queries!.Clip), outcomes.Average(o => o.Queries!.Apt), outcomes.Average(o => o.Queries!.Tapt))
                : null,
            Stages = attack is AutoAttack auto && outcomes.All(o => o.BrokenBy is not null) ? StageAccuracies(outcomes, auto) : null,
        };
    }

    private static List<StageAccuracy> StageAccuracies(List<ImageOutcome> outcomes, AutoAttack attack)
    {
        var n = attack.Stages.Count;
        var clip = AutoAttack.RobustAfterEachStage(outcomes.Select(o => o.BrokenBy!.Clip).ToList(), n);
        var apt = AutoAttack.RobustAfterEachStage(outcomes.Select(o => o.BrokenBy!.Apt).ToList(), n);
        var tapt = outcomes.Any(o => o.BrokenBy!.Tapt == NotAttacked)
            ? Enumerable.Repeat(double.NaN, n).ToArray()
            : AutoAttack.RobustAfterEachStage(outcomes.Select(o => o.BrokenBy!.Tapt).ToList(), n);
        return Enumerable.Range(0, n).Select(k => new StageAccuracy(attack.Stages[k].Name, new MethodAccuracies(clip[k], apt[k], tapt[k]))).ToList();
    }

    /// <summary>The masking checks one run can make: gradients at the clean images, and Square after the white-box stages of AutoAttack.</summary>
    private static List<MaskingCheck> Checks(List<ImageOutcome> outcomes, IAttack attack, GradientTally gradients)
    {
        var checks = gradients.Checks();
        if (attack is AutoAttack auto && auto.Stages.Count > 0 && auto.Stages[^1] is SquareAttack && outcomes.All(o => o.BrokenBy is not null))
        {
            checks.Add(MaskingChecks.OfSquareAfterWhiteBox("CLIP", outcomes.Select(o => o.BrokenBy!.Clip).ToList(), auto.Stages.Count));
            checks.Add(MaskingChecks.OfSquareAfterWhiteBox("APT", outcomes.Select(o => o.BrokenBy!.Apt).ToList(), auto.Stages.Count));
            if (gradients.Has("TAPT")) checks.Add(MaskingChecks.OfSquareAfterWhiteBox("TAPT", outcomes.Select(o => o.BrokenBy!.Tapt).ToList(), auto.Stages.Count));
        }
        return checks;
    }

    /// <summary>Each image of a batch as CHW floats.</summary>
    private static float[][] Rows(Tensor t)
    {
        var flat = t.detach().cpu().contiguous().to_type(ScalarType.Float32);
        var n = (int)flat.shape[0];
        var all = flat.data<float>().ToArray();
        var plane = all.Length / Math.Max(1, n);
        return Enumerable.Range(0, n).Select(i => all.AsSpan(i * plane, plane).ToArray()).ToArray();
    }

    /// <summary>Per image of the attack's last run, the AutoAttack stage that fooled it (else zeros).</summary>
    private static int[] StagesOf(IAttack attack, int count) => attack is AutoAttack auto ? auto.BrokenBy : new int[count];

    /// <summary>The queries each image took in the attack's last run (score-based attacks), else zeros.</summary>
    private static int[] QueriesOf(IAttack attack, int count) => attack is SquareAttack square ? square.QueriesUsed : new int[count];

    /// <summary>The model, checking the token and counting on every call: an attack calls it at every step.</summary>
    private static LogitsFunction Watched(string method, LogitsFunction model, EvaluationOptions options)
    {
        var (ct, observer) = (options.Cancellation, options.ModelCalls);
        if (!ct.CanBeCanceled && observer is null) return model;
        var calls = 0;
        return img =>
        {
            ct.ThrowIfCancellationRequested();
            observer?.Invoke(method, ++calls);
            return model(img);
        };
    }

    private static bool? Flag(TaptResult r) => r.Distances is { ToAttackedImages: not null } d ? d.CloserToAttacked : null;
}
