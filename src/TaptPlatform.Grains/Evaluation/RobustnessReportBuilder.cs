using System.Collections.Immutable;
using System.Text.Json.Nodes;
using TaptPlatform.Contracts;
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
        double totalSeconds = 0;
        var totalImages = 0;
        for (var k = 0; k < req.Epsilons.Length; k++)
        {
            var os = byEps.GetValueOrDefault(k) ?? [];
            totalSeconds += os.Sum(o => o.Seconds);
            totalImages += os.Length;
            var clean = new JsonObject();
            var robust = new JsonObject();
            foreach (var m in Methods)
            {
                clean[m] = Accuracy(os, o => Pick(o, m, robust: false));
                robust[m] = Accuracy(os, o => Pick(o, m, robust: true));
            }
            var perLabel = new JsonArray();
            for (var l = 0; l < labels.Length; l++)
            {
                var ls = os.Where(o => o.Label == l).ToArray();
                if (ls.Length == 0) continue;
                var lc = new JsonObject();
                var lr = new JsonObject();
                foreach (var m in Methods)
                {
                    lc[m] = Accuracy(ls, o => Pick(o, m, false));
                    lr[m] = Accuracy(ls, o => Pick(o, m, true));
                }
                perLabel.Add(new JsonObject { ["label"] = labels[l], ["n"] = ls.Length, ["clean"] = lc, ["robust"] = lr });
            }
            runs.TryGetValue(k, out var run);
            results.Add(new JsonObject
            {
                ["epsilon"] = req.Epsilons[k],
                ["epsilon255"] = req.Epsilons[k] * 255,
                ["n"] = os.Length,
                ["complete"] = run is not null && os.Length == imageNames.Count,
                ["clean"] = clean,
                ["robust"] = robust,
                ["perLabel"] = perLabel,
                ["secondsPerImage"] = os.Length == 0 ? null : os.Sum(o => o.Seconds) / os.Length,
                ["gradient"] = run?.Gradient,
                ["silo"] = run?.Silo,
            });
            curve.Add(new JsonObject
            {
                ["epsilon"] = req.Epsilons[k],
                ["clip"] = robust["clip"]!["accuracy"]?.DeepClone(),
                ["apt"] = robust["apt"]!["accuracy"]?.DeepClone(),
                ["tapt"] = robust["tapt"]!["accuracy"]?.DeepClone(),
            });
        }
        var images = new JsonArray();
        for (var i = 0; i < imageNames.Count; i++)
        {
            var perEps = new JsonArray();
            for (var k = 0; k < req.Epsilons.Length; k++)
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
                });
            }
            var label = byEps.Values.SelectMany(x => x).FirstOrDefault(x => x.Index == i)?.Label;
            images.Add(new JsonObject { ["index"] = i, ["name"] = imageNames[i], ["label"] = label is int li ? labels[li] : null, ["outcomes"] = perEps });
        }
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
            ["attack"] = new JsonObject
            {
                ["kind"] = req.Attack,
                ["name"] = first?.AttackName,
                ["epsilons"] = new JsonArray(req.Epsilons.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()),
                ["steps"] = req.Steps,
                ["stepSize"] = req.StepSize ?? 1.0 / 255,
                ["restarts"] = req.Restarts,
                ["protocol"] = req.Protocol,
                ["eot"] = req.EotSamples,
                ["seed"] = req.Seed,
                ["batchSize"] = req.BatchSize,
                ["gradient"] = first?.Gradient,
            },
            ["pinned"] = new JsonObject
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
            },
            ["cost"] = new JsonObject
            {
                ["secondsPerImage"] = totalImages == 0 ? null : totalSeconds / totalImages,
                ["note"] = "wall-clock seconds per image and ε for all three methods and their attacks, on the evaluating silo",
            },
            ["confidence"] = "95% Wilson score intervals",
            ["results"] = results,
            ["curve"] = curve,
            ["images"] = images,
        };
    }

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
