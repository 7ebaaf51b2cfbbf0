using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Evaluation;

/// <summary>TAPT's accuracy under one test-time setting, on the clean and on APT's adversarial images of an evaluation.</summary>
/// <remarks>
/// <see cref="SamePrediction"/> and <see cref="SameSelection"/> compare with the first listed setting, over the clean and
/// the attacked images (NaN for the first): the share of images predicted alike, and of images whose first step
/// selected the same set of views (how a precision setting is judged against fp32).
/// </remarks>
public sealed record SweepResult(TaptOptions Settings, int N, double Clean, double Robust, double VoteRobust, double SamePrediction = double.NaN, double SameSelection = double.NaN);

/// <summary>
/// Runs TAPT under several test-time settings on the very images of a non-adaptive evaluation (fed batch by batch
/// from <see cref="RobustnessEvaluator"/>'s callback), with the evaluator's per-image seeds, so settings are compared
/// on the same adversarial images and the evaluation's own setting reproduces its TAPT figures exactly.
/// </summary>
public sealed class TaptSettingsSweep
{
    private readonly PromptedClip _clip;
    private readonly LabelVocabulary _vocabulary;
    private readonly int _seed;
    private readonly (TaptDefense Defense, int[] Counts)[] _runs;   // counts: clean, robust, vote on robust, same prediction and same selection as the first
    private int _n;

    public TaptSettingsSweep(PromptedClip clip, PromptArtifact artifact, LabelVocabulary vocabulary, IReadOnlyList<TaptOptions> settings, int seed)
    {
        foreach (var s in settings) s.Validate();
        _clip = clip;
        _vocabulary = vocabulary;
        _seed = seed;
        _runs = settings.Select(s => (new TaptDefense(clip, artifact, s), new int[5])).ToArray();
    }

    /// <summary>Tunes every image of the batch under every setting, clean and attacked (APT's adversarial images).</summary>
    public void Add(EvaluationBatch batch)
    {
        using var scope = NewDisposeScope();
        Tensor Images(float[][] rows) => stack(rows.Select(r => tensor(r, [3, batch.Height, batch.Width])).ToArray()).to(_clip.Device);
        var clean = Images(batch.Clean);
        var attacked = Images(batch.AptAdversarial);
        var outcomes = batch.Outcomes;
        List<TaptInput> Inputs(Tensor x) => outcomes.Select((o, i) => new TaptInput(x[i], _seed * 1_000_003 + o.Index)).ToList();
        IReadOnlyList<TaptResult>? first = null;
        foreach (var (defense, counts) in _runs)
        {
            var c = defense.Classify(Inputs(clean), _vocabulary);
            var r = defense.Classify(Inputs(attacked), _vocabulary);
            IReadOnlyList<TaptResult> both = [.. c, .. r];
            for (var i = 0; i < outcomes.Count; i++)
            {
                counts[0] += c[i].Prediction == outcomes[i].Label ? 1 : 0;
                counts[1] += r[i].Prediction == outcomes[i].Label ? 1 : 0;
                counts[2] += r[i].ViewsPrediction == outcomes[i].Label ? 1 : 0;
            }
            if (first is null)
            {
                first = both;
                continue;
            }
            for (var i = 0; i < both.Count; i++)
            {
                counts[3] += both[i].Prediction == first[i].Prediction ? 1 : 0;
                counts[4] += both[i].SelectsSameViewsAs(first[i]) ? 1 : 0;
            }
        }
        _n += outcomes.Count;
    }

    public IReadOnlyList<SweepResult> Results =>
        _runs.Select((r, i) => new SweepResult(r.Defense.Options, _n, Ratio(r.Counts[0]), Ratio(r.Counts[1]), Ratio(r.Counts[2]),
            i == 0 ? double.NaN : r.Counts[3] / (2.0 * _n), i == 0 ? double.NaN : r.Counts[4] / (2.0 * _n))).ToArray();

    private double Ratio(int count) => _n == 0 ? double.NaN : count / (double)_n;
}
