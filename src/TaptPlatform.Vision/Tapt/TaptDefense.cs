// Around 400 lines because the test-time step's passes (scoring in chunks, selection, loss, statistics, report) share one
// instance's references, options and augmenter; split apart they would only pass those around.
using System.Diagnostics;
using TorchSharp;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Tapt;

/// <summary>
/// Test-time adversarial prompt tuning (Wang et al., CVPR 2025) for one model, prompt artifact and
/// vocabulary. For every image: reset to P_adv, build views, keep the most confident ones, minimise
/// marginal entropy + L1 alignment of block statistics with AdamW, then classify the original image
/// with the tuned prompts. Several images can be tuned in one batched pass; each keeps its own prompts
/// and optimiser state, so the results equal one-at-a-time tuning. Every call keeps its prompts,
/// optimiser and tensors to itself and the instance is only read, so tuning threads can share one.
/// Disposing frees the device copies of the reference statistics (the artifact keeps its own).
/// </summary>
public sealed class TaptDefense : IDisposable
{
    private static readonly Scalar SmallestFloat = float.MinValue.ToScalar();
    private readonly PromptedClip _clip;
    private readonly PromptArtifact _artifact;
    private readonly ViewAugmenter _augmenter;

    private readonly DeviceReference? _alignAdv, _alignClean, _adversarial, _attacked;

    public TaptDefense(PromptedClip clip, PromptArtifact artifact, TaptOptions? options = null)
    {
        _clip = clip;
        _artifact = artifact;
        Options = options ?? artifact.Settings;
        Options.Validate();
        _augmenter = new ViewAugmenter(MinScale: Options.ViewMinScale);
        // The references move to the model's device once, not on every step of every image.
        _adversarial = DeviceReference.Of(artifact.AdversarialStatistics, clip.Device);
        _attacked = DeviceReference.Of(artifact.AttackedStatistics, clip.Device);
        _alignAdv = ReferenceEquals(artifact.AlignmentAdversarial, artifact.AttackedStatistics) ? _attacked : _adversarial;
        _alignClean = DeviceReference.Of(artifact.CleanStatistics, clip.Device);
    }

    /// <summary>Reference mean and variance [layers, tokens, width] on the tuning device.</summary>
    private sealed record DeviceReference(Tensor Mean, Tensor Variance, int Layers)
    {
        public static DeviceReference? Of(ReferenceStatistics? s, Device device)
        {
            if (s is null) return null;
            var mean = Own(s.Mean, device);
            var variance = Own(s.Variance, device);
            return new DeviceReference(mean, variance, s.Layers);
        }

        /// <summary>A handle of this defense's own, so disposing it never disposes the artifact's tensor.</summary>
        private static Tensor Own(Tensor t, Device device)
        {
            var moved = t.to(device);
            if (ReferenceEquals(moved, t)) moved = t.alias();
            moved.DetachFromDisposeScope();
            return moved;
        }

        public void Dispose()
        {
            Mean.Dispose();
            Variance.Dispose();
        }
    }

    public TaptOptions Options { get; }
    public PromptArtifact Artifact => _artifact;

    /// <summary>Bytes of the reference statistics this defense keeps on the device.</summary>
    public long DeviceBytes => References().Sum(r => r.Mean.NumberOfElements * r.Mean.ElementSize + r.Variance.NumberOfElements * r.Variance.ElementSize);

    private IEnumerable<DeviceReference> References() =>
        new[] { _alignAdv, _alignClean, _adversarial, _attacked }.OfType<DeviceReference>().Distinct<DeviceReference>(ReferenceEqualityComparer.Instance);

    public void Dispose()
    {
        foreach (var r in References()) r.Dispose();
    }

    /// <summary>Defends a group of images against one vocabulary; <paramref name="onStep"/> sees every step of every image.</summary>
    public IReadOnlyList<TaptResult> Classify(IReadOnlyList<TaptInput> inputs, LabelVocabulary vocabulary, Action<TaptStepReport>? onStep = null) =>
        Run(inputs, vocabulary, onStep, null);

    /// <summary>
    /// Runs the test-time tuning and returns the tuned prompts, stacked one slice per input and
    /// detached (the caller disposes them). The adaptive attack differentiates through these.
    /// </summary>
    public PromptSet TunePrompts(IReadOnlyList<TaptInput> inputs, LabelVocabulary vocabulary)
    {
        PromptSet? tuned = null;
        Run(inputs, vocabulary, null, p => tuned = p);
        return tuned!;
    }

    private IReadOnlyList<TaptResult> Run(IReadOnlyList<TaptInput> inputs, LabelVocabulary vocabulary, Action<TaptStepReport>? onStep, Action<PromptSet>? keepTuned)
    {
        if (inputs.Count == 0) return [];
        var clock = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var k = inputs.Count;
        var o = Options;
        var v = o.Views;
        var sel = o.SelectedViews;
        var device = _clip.Device;

        var originals = stack(inputs.Select(i => i.Image.to(device)).ToArray());   // [K, 3, S, S]
        Tensor views;
        using (no_grad())
            views = cat(inputs.Select((input, i) => _augmenter.Views(originals[i], v, new Random(input.Seed))).ToArray(), 0);  // [K·V, 3, S, S]

        // Baseline: plain CLIP with the hand-crafted prompt texts.
        float[][] baseline;
        using (no_grad()) baseline = Rows(_clip.Classify(originals, vocabulary, null).softmax(-1));

        var prompts = _artifact.Adversarial.Stack(k);    // reset: every image starts from P_adv
        var optimizer = new PromptAdamW(prompts.Parameters(), o.LearningRate, o.WeightDecay);
        using var alignmentWeight = o.AlignmentWeight.ToScalar();
        using var gamma = o.Gamma.ToScalar();
        using var cleanWeight = (1 - o.Gamma).ToScalar();
        var reports = Enumerable.Range(0, k).Select(_ => new List<TaptStepReport>()).ToArray();
        float[][]? apt = null;
        float[][]? current;
        StatisticsDistances[]? distances = null;
        long[]? votes = null;
        var layers = _alignAdv is null || _alignClean is null ? 0
            : Math.Min(o.AlignmentLayers, Math.Min(_alignAdv.Layers, _alignClean.Layers));

        // Prediction of the originals with the current prompts (APT before any step).
        float[][] Predict()
        {
            using var _ = no_grad();
            using var inner = NewDisposeScope();
            var img = _clip.ImageFeatures(originals, prompts).unsqueeze(1);          // [K, 1, P]
            var txt = _clip.TextFeatures(vocabulary, prompts);                        // [K, C, P]
            return Rows(_clip.Logits(img, txt).squeeze(1).softmax(-1));
        }

        // With steps, the first scoring pass already holds the originals (view 0) under P_adv (in fp32 only: a bf16 scoring
        // pass ranks views, it does not make APT's prediction).
        if (o.Steps == 0 || !o.EfficientSelection || o.Precision != TaptPrecision.Fp32) apt = Predict();
        current = apt;
        for (var step = 1; step <= o.Steps; step++)
        {
            using var stepScope = NewDisposeScope();
            using var tuning = enable_grad();     // the step differentiates even when its caller (a score-based attack) does not
            var chosen = o.EfficientSelection
                ? SelectEfficiently(views, vocabulary, prompts, k, layers, step == 1)
                : SelectStraightforwardly(views, vocabulary, prompts, k, layers, step == 1);
            var (selected, logitsSel, blocks) = (chosen.Selected, chosen.Logits, chosen.Blocks);
            if (chosen.AptBefore is not null) apt = chosen.AptBefore;
            if (chosen.Votes is not null) votes = chosen.Votes;

            var entropyLoss = MarginalEntropy(logitsSel);                              // [K]
            var stats = layers > 0 ? BlockStatistics(blocks, k, sel, layers) : [];
            var dAdv = layers > 0 ? Distance(stats, _alignAdv!) : zeros(k, device: device);      // [K]
            var dClean = layers > 0 ? Distance(stats, _alignClean!) : zeros(k, device: device);
            var loss = entropyLoss.Plus(alignmentWeight * (gamma * dAdv).Plus(cleanWeight * dClean));
            if (step == 1 && layers > 0) distances = AuditDistances(stats, dAdv, dClean, layers, k);
            optimizer.ZeroGrad();
            loss.sum().backward();
            optimizer.Step();

            current = Predict();
            Report(step, k, entropyLoss, dAdv, dClean, loss, selected, current, vocabulary, reports, onStep);
        }
        var tunedValues = o.ReturnTunedPrompts ? TunedValues(prompts, k) : null;
        if (keepTuned is not null)
        {
            var tuned = prompts.Clone();
            tuned.SetRequiresGrad(false);
            foreach (var p in tuned.Parameters()) p.DetachFromDisposeScope();
            keepTuned(tuned);
        }
        prompts.Dispose();
        var seconds = clock.Elapsed.TotalSeconds / k;
        apt ??= current;
        current ??= apt;
        return Enumerable.Range(0, k).Select(i => new TaptResult(i,
            ArgMax(baseline[i]), baseline[i], ArgMax(apt![i]), apt[i], ArgMax(current![i]), current[i],
            reports[i], distances?[i], seconds)
        { TunedPrompts = tunedValues?[i], ViewsPrediction = votes is null ? null : (int)votes[i] }).ToArray();
    }

    /// <summary>Each image's report of one step (losses, selected views, top labels after it), to the caller as it happens.</summary>
    private void Report(int step, int k, Tensor entropyLoss, Tensor dAdv, Tensor dClean, Tensor loss, Tensor selected, float[][] current,
        LabelVocabulary vocabulary, List<TaptStepReport>[] reports, Action<TaptStepReport>? onStep)
    {
        var sel = Options.SelectedViews;
        var ent = entropyLoss.detach().cpu().data<float>().ToArray();
        var aa = dAdv.detach().cpu().data<float>().ToArray();
        var ac = dClean.detach().cpu().data<float>().ToArray();
        var tot = loss.detach().cpu().data<float>().ToArray();
        var selRows = selected.cpu().data<long>().ToArray();
        for (var i = 0; i < k; i++)
        {
            var report = new TaptStepReport(i, step, ent[i], aa[i], ac[i], tot[i],
                selRows.Skip(i * sel).Take(sel).Select(x => (int)x).ToArray(), TopK(current[i], vocabulary, Options.TopK));
            reports[i].Add(report);
            onStep?.Invoke(report);
        }
    }

    /// <summary>The number format of the passes that carry gradients to the prompts.</summary>
    private TaptPrecision StepPrecision => Options.Precision == TaptPrecision.Bf16 ? TaptPrecision.Bf16 : TaptPrecision.Fp32;

    /// <summary>What one step's selection yields: the chosen views' logits with autograd to the prompts, their block inputs.</summary>
    private sealed record Selection(Tensor Selected, Tensor Logits, List<Tensor> Blocks, float[][]? AptBefore, long[]? Votes);

    /// <summary>
    /// Scores every view without autograd, then runs only the selected ones with gradients. One text pass serves both
    /// (detached for the scoring): with large vocabularies the text tower costs as much as the views. At the first
    /// step view 0 (the original) under P_adv is APT's prediction, and the selected views' vote is recorded.
    /// </summary>
    private Selection SelectEfficiently(Tensor views, LabelVocabulary vocabulary, PromptSet prompts, int k, int layers, bool first)
    {
        var (v, sel) = (Options.Views, Options.SelectedViews);
        var text = _clip.TextFeatures(vocabulary, prompts);
        Tensor selected;
        float[][]? apt = null;
        long[]? votes = null;
        using (no_grad())
        {
            using var scoringText = text.detach();
            var all = ScoringLogits(views, scoringText, prompts, k, v);
            if (first && Options.Precision == TaptPrecision.Fp32) apt = Rows(all.select(1, 0).softmax(-1));
            selected = Entropy(all).topk(sel, dim: 1, largest: false, sorted: true).indexes;
            if (first) votes = Vote(all, selected);
        }
        var blocks = new List<Tensor>();
        var logits = GroupedLogits(Gather(views, selected, v), text, prompts, k, sel, blocks, layers, StepPrecision);
        return new Selection(selected, logits, blocks, apt, votes);
    }

    /// <summary>
    /// The scoring pass's [K, V, C] logits, run over the views in chunks (views j..j+n of every image at once, so each chunk
    /// is still K groups under their own prompt slices) sized so the widest activation (the MLP's hidden layer) stays
    /// under <see cref="TaptOptions.ScoringChunkBytes"/> (16 MiB). Without autograd nothing outlives a chunk, so a ViT-B/32 pass of 64 views
    /// peaks at a third of the memory, and its buffers are small enough for the allocator to reuse instead of mapping
    /// fresh pages for every layer (page faults were a fifth of the time at B/32). The default model fits in one chunk.
    /// </summary>
    private Tensor ScoringLogits(Tensor views, Tensor text, PromptSet prompts, int k, int v)
    {
        var vision = _clip.Model.Config.Vision;
        var tokens = vision.NumPositions + prompts.Shape.TokensPerLayer;
        var bytesPerView = (long)k * tokens * Math.Max(vision.IntermediateSize, vision.HiddenSize) * sizeof(float);
        var budget = Math.Max(1, Options.ScoringChunkBytes);
        var chunks = (int)Math.Clamp((bytesPerView * v + budget - 1) / budget, 1, v);
        if (chunks == 1) return GroupedLogits(views, text, prompts, k, v, null, 0, Options.Precision);
        var size = (v + chunks - 1) / chunks;
        using var byImage = views.view(k, v, views.shape[1], views.shape[2], views.shape[3]);
        var parts = new List<Tensor>();
        try
        {
            for (var start = 0; start < v; start += size)
            {
                var n = Math.Min(size, v - start);
                using var scope = NewDisposeScope();
                using var slice = byImage.narrow(1, start, n).reshape(k * n, views.shape[1], views.shape[2], views.shape[3]);
                parts.Add(GroupedLogits(slice, text, prompts, k, n, null, 0, Options.Precision).MoveToOuterDisposeScope());
            }
            return cat(parts, 1);
        }
        finally
        {
            foreach (var part in parts) part.Dispose();
        }
    }

    /// <summary>The straightforward form (tested equal to the efficient one): every view with autograd, then select.</summary>
    private Selection SelectStraightforwardly(Tensor views, LabelVocabulary vocabulary, PromptSet prompts, int k, int layers, bool first)
    {
        var (v, sel, c) = (Options.Views, Options.SelectedViews, vocabulary.Count);
        var allBlocks = new List<Tensor>();
        var all = GroupedLogits(views, _clip.TextFeatures(vocabulary, prompts), prompts, k, v, allBlocks, layers, StepPrecision);
        Tensor selected;
        long[]? votes = null;
        using (no_grad())
        {
            selected = Entropy(all).topk(sel, dim: 1, largest: false, sorted: true).indexes;
            if (first) votes = Vote(all.detach(), selected);
        }
        var logits = all.gather(1, selected.unsqueeze(-1).expand(-1, -1, c));
        var blocks = new List<Tensor>();
        foreach (var b in allBlocks)
        {
            var bk = b.view(k, v, b.shape[1], b.shape[2]);
            var idx = selected.view(k, sel, 1, 1).expand(-1, -1, b.shape[1], b.shape[2]);
            blocks.Add(bk.gather(1, idx).view(k * sel, b.shape[1], b.shape[2]));
        }
        return new Selection(selected, logits, blocks, null, votes);
    }

    /// <summary>Auditors' distances before tuning; the alignment terms are reused where the reference is the same one.</summary>
    private StatisticsDistances[] AuditDistances(IReadOnlyList<(Tensor Mean, Tensor Variance)> stats, Tensor dAdv, Tensor dClean, int layers, int k)
    {
        float[]? Values(DeviceReference? r, Tensor? computed)
        {
            if (r is null || r.Layers < layers) return null;
            using var d = computed?.detach() ?? Distance(stats, r).detach();
            return d.cpu().data<float>().ToArray();
        }
        var toAdversarial = Values(_adversarial, ReferenceEquals(_adversarial, _alignAdv) ? dAdv : null);
        var toAttacked = Values(_attacked, ReferenceEquals(_attacked, _alignAdv) ? dAdv : null);
        var toClean = Values(_alignClean, dClean)!;
        return Enumerable.Range(0, k).Select(i =>
            new StatisticsDistances(toAdversarial?[i] ?? double.NaN, toClean[i], toAttacked is null ? null : toAttacked[i])).ToArray();
    }

    private static Dictionary<string, float[]>[] TunedValues(PromptSet prompts, int k)
    {
        var state = prompts.State();
        return Enumerable.Range(0, k).Select(i =>
            state.ToDictionary(kv => kv.Key, kv => kv.Value[i].detach().cpu().contiguous().data<float>().ToArray(), StringComparer.Ordinal)).ToArray();
    }

    /// <summary>Per image, argmax of the mean probability of its selected views: [K, V, C] logits, [K, sel] indices.</summary>
    private static long[] Vote(Tensor logits, Tensor selected)
    {
        using var scope = NewDisposeScope();
        var index = selected.unsqueeze(-1).expand(-1, -1, logits.shape[2]);
        return logits.gather(1, index).softmax(-1).mean([1]).argmax(-1).cpu().data<long>().ToArray();
    }

    /// <summary>[K, n, C] logits of K groups of n views each under their own prompt slice; <paramref name="text"/> is [K, C, P] (or [C, P]).</summary>
    private Tensor GroupedLogits(Tensor views, Tensor text, PromptSet prompts, int k, int n, List<Tensor>? blocks, int layers,
        TaptPrecision precision)
    {
        using var features = _clip.ImageFeatures(views, prompts, precision, blocks, layers);
        using var img = features.view(k, n, -1);
        return _clip.Logits(img, text);
    }

    private static Tensor Gather(Tensor views, Tensor selected, int viewsPerImage)
    {
        var k = selected.shape[0];
        using var count = k.ToScalar();
        using var stride = viewsPerImage.ToScalar();
        using var offsets = arange(count, dtype: ScalarType.Int64, device: selected.device).mul(stride).unsqueeze(1);
        using var flat = selected.Plus(offsets).flatten();
        return views.index_select(0, flat);
    }

    /// <summary>Per-view entropy H(p) of [K, V, C] logits.</summary>
    public static Tensor Entropy(Tensor logits)
    {
        using var logp = logits.log_softmax(-1);
        using var p = logp.exp();
        return -(p * logp).sum(-1);
    }

    /// <summary>H(mean over views of p), computed in log space with logsumexp: [K, n, C] → [K].</summary>
    public static Tensor MarginalEntropy(Tensor logits)
    {
        var n = logits.shape[1];
        using var logp = logits.log_softmax(-1);
        using var logN = Math.Log(n).ToScalar();
        using var avg = logp.logsumexp(1).sub(logN);                     // log of the mean probability
        using var clamped = avg.clamp_min(SmallestFloat);
        return -(clamped.exp() * clamped).sum(-1);
    }

    /// <summary>Per aligned block: mean and variance over each image's selected views, [K, tokens, width] each.</summary>
    private List<(Tensor Mean, Tensor Variance)> BlockStatistics(IReadOnlyList<Tensor> blocks, int k, int n, int layers)
    {
        var stats = new List<(Tensor, Tensor)>(layers);
        for (var l = 0; l < layers; l++)
        {
            var x = blocks[l].view(k, n, blocks[l].shape[1], blocks[l].shape[2]);
            stats.Add((x.mean([1]), x.var(1, unbiased: Options.UnbiasedVariance)));
        }
        return stats;
    }

    /// <summary>L1 distance of the block statistics to a reference: [K].</summary>
    private Tensor Distance(IReadOnlyList<(Tensor Mean, Tensor Variance)> stats, DeviceReference reference)
    {
        Tensor? total = null;
        using var layers = stats.Count.ToScalar();
        for (var l = 0; l < stats.Count; l++)
        {
            var dm = (stats[l].Mean - reference.Mean[l]).abs();
            var dv = (stats[l].Variance - reference.Variance[l]).abs();
            var term = Options.AlignmentForm == AlignmentForm.Code
                ? (OneHalf * dm.mean([1, 2])).Plus(OneHalf * dv.mean([1, 2]))
                : dm.sum([1, 2]).Plus(dv.sum([1, 2])).div(layers);
            total = total is null ? term : total.Plus(term);
        }
        return total!;
    }

    private static float[][] Rows(Tensor probabilities)
    {
        using var cpu = probabilities.detach().cpu();
        var c = (int)cpu.shape[1];
        var flat = cpu.data<float>().ToArray();
        return Enumerable.Range(0, (int)cpu.shape[0]).Select(i => flat.AsSpan(i * c, c).ToArray()).ToArray();
    }

    public static int ArgMax(float[] p)
    {
        var best = 0;
        for (var i = 1; i < p.Length; i++) if (p[i] > p[best]) best = i;
        return best;
    }

    public static IReadOnlyList<LabelScore> TopK(float[] p, LabelVocabulary vocabulary, int k) =>
        p.Select((x, i) => new LabelScore(i, vocabulary.Labels[i], x)).OrderByDescending(s => s.Probability).Take(k).ToArray();
}
