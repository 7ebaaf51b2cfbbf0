using System.Collections.Immutable;
using System.Text.Json.Nodes;
using TaptPlatform.Contracts;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Evaluation;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// The robustness report of an evaluation as JSON: clean and robust accuracy per method with 95% Wilson intervals, a per-label
/// breakdown, robust accuracy versus ε, the cost, and what it is pinned to (model checksum, prompt artifact and its checksum,
/// prompt configuration version, engine version), so reports stay comparable across time.
/// </summary>
public static class RobustnessReportBuilder
{
    public const string Schema = "tapt-robustness-report/1";
    private static readonly string[] Methods = ["clip", "apt", "tapt"];

    public static JsonObject Build(EvaluationStatus status, EvaluationDefinition def, IReadOnlyList<string> imageNames,
        IEnumerable<EvaluationImageOutcome> outcomes, IReadOnlyDictionary<int, EvaluationRunInfo> runs)
    {
        var labels = def.Vocabulary.Labels.Select(l => l.Label).ToArray();
        var req = def.Request;
        var byEps = outcomes.GroupBy(o => o.EpsilonIndex).ToDictionary(g => g.Key, g => g.OrderBy(o => o.Index).ToArray());
        var first = runs.Values.OrderBy(r => r.EpsilonIndex).FirstOrDefault();
        var results = new JsonArray();
        var curve = new JsonArray();
        for (var k = 0; k < req.Epsilons.Length; k++)
        {
            var os = byEps.GetValueOrDefault(k) ?? [];
            runs.TryGetValue(k, out var run);
            var result = EpsilonResult(req, req.Epsilons[k], os, labels, run, complete: run is not null && os.Length == imageNames.Count);
            results.Add(result);
            var robust = result["robust"]!;
            curve.Add(new JsonObject
            {
                ["epsilon"] = req.Epsilons[k],
                ["clip"] = robust["clip"]!["accuracy"]?.DeepClone(),
                ["apt"] = robust["apt"]!["accuracy"]?.DeepClone(),
                ["tapt"] = robust["tapt"]!["accuracy"]?.DeepClone(),
            });
        }
        var all = byEps.Values.SelectMany(x => x).ToArray();
        return new JsonObject
        {
            ["schema"] = Schema,
            ["jobId"] = def.JobId,
            ["name"] = req.Name,
            ["state"] = status.State.ToString().ToLowerInvariant(),
            ["error"] = status.Error,
            ["createdAt"] = def.CreatedAt,
            ["startedAt"] = status.StartedAt,
            ["finishedAt"] = status.FinishedAt,
            ["n"] = imageNames.Count,
            ["attack"] = Attack(req, first),
            ["pinned"] = Pinned(def, labels, first),
            ["cost"] = new JsonObject
            {
                ["secondsPerImage"] = all.Length == 0 ? null : all.Sum(o => o.Seconds) / all.Length,
                ["note"] = "wall-clock seconds per image and ε for all three methods and their attacks, on the evaluating silo",
                ["units"] = status.CostPerImage * imageNames.Count,
                ["silos"] = new JsonArray([.. runs.Values.Select(r => r.Silo).Where(s => s.Length > 0).Distinct().Order(StringComparer.Ordinal).Select(s => JsonValue.Create(s))]),
            },
            ["confidence"] = "95% Wilson score intervals",
            ["results"] = results,
            ["curve"] = curve,
            ["checks"] = Checks(req, byEps, results),
            ["images"] = Images(imageNames, labels, byEps, req.Epsilons.Length),
        };
    }

    /// <summary>
    /// The masking checks an evaluation's figures allow (<see cref="MaskingChecks"/>): per ε, the input gradients at the clean
    /// images and (standard AutoAttack) the images Square fooled after the white-box stages (<see cref="AttackDiagnostics"/>);
    /// with two ε or more, each method's robust accuracy must not rise as ε grows. (AutoAttack against PGD needs both in one
    /// report; an evaluation runs one attack, so it is not made here.)
    /// </summary>
    private static JsonArray Checks(EvaluationRequest req, Dictionary<int, EvaluationImageOutcome[]> byEps, JsonArray results)
    {
        var epsilons = req.Epsilons;
        var checks = new JsonArray();
        for (var k = 0; k < epsilons.Length; k++)
            foreach (var c in AttackDiagnostics.Checks(req, epsilons[k], byEps.GetValueOrDefault(k) ?? []))
                checks.Add(AttackDiagnostics.ToJson(c, epsilons[k]));
        foreach (var m in Methods)
        {
            var points = new List<(double Epsilon, double Robust)>();
            for (var k = 0; k < epsilons.Length; k++)
                if (results[k]?["robust"]?[m]?["accuracy"] is JsonValue v && v.TryGetValue(out double accuracy) && !double.IsNaN(accuracy))
                    points.Add((epsilons[k], accuracy));
            if (points.Count < 2) continue;
            var c = MaskingChecks.OfEpsilons(m.ToUpperInvariant(), points);
            checks.Add(AttackDiagnostics.ToJson(c));
        }
        return checks;
    }

    /// <summary>
    /// One ε: clean and robust accuracy per method, overall and per label, AutoAttack's robust accuracy after each stage and
    /// Square's mean queries per image (null for other attacks), its cost and where it ran.
    /// </summary>
    private static JsonObject EpsilonResult(EvaluationRequest req, double epsilon, EvaluationImageOutcome[] os, string[] labels, EvaluationRunInfo? run, bool complete)
    {
        var perLabel = new JsonArray();
        for (var l = 0; l < labels.Length; l++)
        {
            var ls = os.Where(o => o.Label == l).ToArray();
            if (ls.Length == 0) continue;
            perLabel.Add(new JsonObject { ["label"] = labels[l], ["n"] = ls.Length, ["clean"] = Accuracies(ls, robust: false), ["robust"] = Accuracies(ls, robust: true) });
        }
        return new JsonObject
        {
            ["epsilon"] = epsilon,
            ["epsilon255"] = epsilon * 255,
            ["n"] = os.Length,
            ["complete"] = complete,
            ["clean"] = Accuracies(os, robust: false),
            ["robust"] = Accuracies(os, robust: true),
            ["perLabel"] = perLabel,
            ["stages"] = AttackDiagnostics.Stages(req, epsilon, os),
            ["queriesPerImage"] = AttackDiagnostics.QueriesPerImage(os),
            ["secondsPerImage"] = os.Length == 0 ? null : os.Sum(o => o.Seconds) / os.Length,
            ["gradient"] = run?.Gradient,
            ["silo"] = run?.Silo,
        };
    }

    private static JsonObject Accuracies(IReadOnlyCollection<EvaluationImageOutcome> os, bool robust)
    {
        var o = new JsonObject();
        foreach (var m in Methods) o[m] = Accuracy(os, x => Pick(x, m, robust));
        return o;
    }

    private static JsonObject Attack(EvaluationRequest req, EvaluationRunInfo? first) => new()
    {
        ["kind"] = req.Attack,
        ["name"] = first?.AttackName,
        ["epsilons"] = new JsonArray(req.Epsilons.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()),
        ["steps"] = req.Steps,
        ["stepSize"] = req.StepSize ?? 1.0 / 255,
        ["restarts"] = req.Restarts,
        ["queries"] = req.UsesQueries ? req.Queries : null,
        ["stages"] = AttackDiagnostics.StageNames(req, req.Epsilons.FirstOrDefault()) is { } stages ? new JsonArray([.. stages.Select(n => JsonValue.Create(n))]) : null,
        ["description"] = AttackSettings.Describe(AttackSettings.ParseKind(req.Attack)),
        ["protocol"] = req.Protocol,
        ["eot"] = req.EotSamples,
        ["seed"] = req.Seed,
        ["batchSize"] = req.BatchSize,
        ["gradient"] = first?.Gradient,
    };

    /// <summary>What the report is pinned to, so reports stay comparable across time.</summary>
    private static JsonObject Pinned(EvaluationDefinition def, string[] labels, EvaluationRunInfo? first) => new()
    {
        ["model"] = def.Configuration.Model,
        ["modelChecksum"] = first?.ModelChecksum,
        ["promptConfiguration"] = def.Configuration.Name,
        ["promptConfigurationVersion"] = def.Configuration.Version,
        ["promptArtifact"] = first?.PromptArtifact,
        ["promptArtifactSha256"] = first?.PromptArtifactSha256,
        ["promptArtifactFormatVersion"] = first?.PromptArtifactFormatVersion,
        ["design"] = first?.Design,
        ["tapt"] = first is null ? null : new JsonObject { ["views"] = first.Views, ["steps"] = first.TaptSteps, ["lr"] = first.LearningRate },
        ["vocabulary"] = def.Vocabulary.Name,
        ["vocabularyVersion"] = def.Vocabulary.Version,
        ["labels"] = new JsonArray(labels.Select(l => (JsonNode?)JsonValue.Create(l)).ToArray()),
        ["engineVersion"] = first?.EngineVersion ?? EvaluationWorkerGrain.EngineVersion,
    };

    /// <summary>Every image with its label and each method's prediction per ε (null where none is recorded yet).</summary>
    private static JsonArray Images(IReadOnlyList<string> imageNames, string[] labels, Dictionary<int, EvaluationImageOutcome[]> byEps, int epsilons)
    {
        var images = new JsonArray();
        for (var i = 0; i < imageNames.Count; i++)
        {
            var perEps = new JsonArray();
            for (var k = 0; k < epsilons; k++)
            {
                var o = byEps.GetValueOrDefault(k)?.FirstOrDefault(x => x.Index == i);
                perEps.Add(o is null ? null : new JsonObject
                {
                    ["clipClean"] = labels[o.ClipClean],
                    ["aptClean"] = labels[o.AptClean],
                    ["taptClean"] = labels[o.TaptClean],
                    ["clipRobust"] = labels[o.ClipRobust],
                    ["aptRobust"] = labels[o.AptRobust],
                    ["taptRobust"] = labels[o.TaptRobust],
                    ["brokenByStage"] = Figures(o.BrokenBy),
                    ["queries"] = Figures(o.Queries),
                });
            }
            var label = byEps.Values.SelectMany(x => x).FirstOrDefault(x => x.Index == i)?.Label;
            images.Add(new JsonObject { ["index"] = i, ["name"] = imageNames[i], ["label"] = label is int li ? labels[li] : null, ["outcomes"] = perEps });
        }
        return images;
    }

    private static JsonObject? Figures(EvaluationMethodFigures? f) => f is null ? null : new() { ["clip"] = f.Clip, ["apt"] = f.Apt, ["tapt"] = f.Tapt };

    private static (int Prediction, int Label) Pick(EvaluationImageOutcome o, string method, bool robust) => (method, robust) switch
    {
        ("clip", false) => (o.ClipClean, o.Label),
        ("apt", false) => (o.AptClean, o.Label),
        ("tapt", false) => (o.TaptClean, o.Label),
        ("clip", true) => (o.ClipRobust, o.Label),
        ("apt", true) => (o.AptRobust, o.Label),
        _ => (o.TaptRobust, o.Label),
    };

    private static JsonObject Accuracy(IReadOnlyCollection<EvaluationImageOutcome> os, Func<EvaluationImageOutcome, (int Prediction, int Label)> f)
    {
        var n = os.Count;
        var correct = os.Count(o => f(o) is var p && p.Prediction == p.Label);
        var (lo, hi) = WilsonInterval.Compute(correct, n);
        return new JsonObject
        {
            ["accuracy"] = n == 0 ? null : correct / (double)n,
            ["correct"] = correct,
            ["n"] = n,
            ["ci95"] = n == 0 ? null : new JsonArray(lo, hi),
        };
    }
}
