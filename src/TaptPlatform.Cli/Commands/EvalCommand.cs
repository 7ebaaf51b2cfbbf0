using System.CommandLine;
using TaptPlatform.Cli.Progress;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt eval</c>: clean and robust accuracy of CLIP, APT and TAPT.</summary>
public static class EvalCommand
{
    private sealed record Options(string Dataset, string Split, int Sample, int Seed, int From, int Count, AttackKind Kind, double Eps, int Steps,
        double? StepSize, int Restarts, EvaluationProtocol Protocol, int Eot, int AttackViews, int Batch, string? Sweep, bool Json, int Queries);

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompts = CommonOptions.Prompts();
        var dataset = CliOptions.Defaulted("--dataset", "fashion-mnist", "fashion-mnist, or a folder with one sub-folder per label", "fashion-mnist|DIR");
        var split = CliOptions.Defaulted("--split", "test", "the Fashion-MNIST split", "test|train");
        var sample = CliOptions.Int("--sample", 1000, "images drawn (seeded) from the split", 1, 1_000_000);
        var seed = CliOptions.Int("--seed", 0, "seed of the draw, the attacks and the views");
        var from = CliOptions.Int("--from", 0, "evaluate the sample from its K-th image (0-based) on", 0, 1_000_000, "K");
        var count = CliOptions.Int("--sample-count", 1_000_000, "evaluate at most N images of the sample", 1, 1_000_000);
        var attack = CliOptions.Defaulted("--attack", "pgd", "the attack: pgd, cw, di, apgd (APGD-CE), apgd-t, fab-t, square (score-based), autoattack or autoattack-rand",
            "pgd|cw|di|apgd|apgd-t|fab-t|square|autoattack|autoattack-rand");
        attack.CompletionSources.Add("pgd", "cw", "di", "apgd", "apgd-t", "fab-t", "square", "autoattack", "autoattack-rand");
        attack.Validators.Add(r =>
        {
            try { AttackSettings.ParseKind(r.GetValueOrDefault<string>()); }
            catch (FormatException e) { r.AddError("--attack: " + e.Message); }
        });
        var eps = CliOptions.Number("--eps", 1.0 / 255, "attack budget (L-inf), e.g. 1/255", 0, 1);
        var steps = CliOptions.Int("--steps", 100, "attack steps", 1, 100_000);
        var stepSize = CliOptions.OptionalNumber("--step-size", "attack step size (default: the attack's own)", 0, 1);
        var restarts = CliOptions.Int("--restarts", 1, "attack restarts", 1, 100);
        var queries = CliOptions.Int("--queries", AttackSettings.DefaultQueries, "Square's query budget per image and restart (with --protocol adaptive each query runs the whole defense)", 1, 100_000);
        var protocol = CliOptions.Choice("--protocol", "nonadaptive", "attack plain CLIP (nonadaptive) or through the defense (adaptive)",
            "nonadaptive", "non-adaptive", "adaptive");
        var eot = CliOptions.Int("--eot", 1, "expectation over transformation samples per attack step (autoattack-rand: at least 20)", 1, 100);
        var attackViews = CliOptions.Int("--attack-views", 0, "views the adaptive attack goes through (needs --protocol adaptive)", 0, 1024);
        var overrides = new TaptSettingOverrides("tapt-", viewsOption: "views");
        var sweep = CliOptions.Text("--tapt-sweep", "also run TAPT under each listed setting (non-adaptive)", "LR:STEPS:WEIGHT[:VIEW_MIN_SCALE[:PRECISION]][,...]");
        var batch = CliOptions.Int("--batch", 16, "images per batch", 1, 1024);
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("eval", """
            Clean and robust accuracy of CLIP, APT and TAPT under an attack.
            TAPT settings default to the prompt artifact's. --tapt-sweep (non-adaptive) also runs TAPT under each listed
            setting (learning rate, steps, alignment weight, smallest view crop area) on the same clean and adversarial images.
            --from K evaluates the sample from its K-th image (0-based) on, so a long evaluation can run as several processes
            on disjoint parts of one sample (e.g. --sample 1000 --from 500 --sample-count 500); their accuracies combine by
            weighting with n. The attacks' random starts differ from a single run's.
            """)
        {
            model, prompts, dataset, split, sample, seed, from, count, attack, eps, steps, stepSize, restarts, queries, protocol, eot, attackViews,
            sweep, batch, json, device, threads,
        };
        overrides.AddTo(command);
        command.SetAction(r =>
        {
            var o = new Options(r.GetValue(dataset)!, r.GetValue(split)!, r.GetValue(sample), r.GetValue(seed), r.GetValue(from), r.GetValue(count),
                AttackSettings.ParseKind(r.GetValue(attack)!), r.GetValue(eps), r.GetValue(steps), r.GetValue(stepSize), r.GetValue(restarts),
                r.GetValue(protocol) == "adaptive" ? EvaluationProtocol.Adaptive : EvaluationProtocol.NonAdaptive,
                r.GetValue(eot), r.GetValue(attackViews), r.GetValue(batch), r.GetValue(sweep), r.GetValue(json), r.GetValue(queries));
            var dev = DeviceOption.Parse(r.GetValue(device));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            return Execute(o, r.GetValue(model), r.GetValue(prompts), dev, recorded => overrides.Apply(r, recorded));
        });
        return command;
    }

    private static int Execute(Options o, string? modelOption, string? promptsPath, TorchSharp.torch.Device device, Func<TaptOptions, TaptOptions> settingsOf)
    {
        var (datasetName, split, sample, seed, from, count, kind, eps, _, _, _, protocol, _, attackViews, batch, sweepText, json, _) = o;
        if (attackViews > 0 && protocol != EvaluationProtocol.Adaptive) throw new CliException("--attack-views attacks through the defense; it needs --protocol adaptive");
        if (sweepText is not null && protocol != EvaluationProtocol.NonAdaptive) throw new CliException("--tapt-sweep compares settings on the same adversarial images; it needs --protocol nonadaptive");
        var (ckpt, clip) = Session.LoadModel(modelOption, device);
        using var _ = ckpt;
        using var artifact = Session.LoadArtifact(promptsPath, ckpt);
        var options = settingsOf(artifact.Settings);

        var data = Session.LoadDataset(datasetName, split, ckpt);
        var vocabulary = Session.Vocabulary(data);
        var drawn = DatasetSampling.Sample(data.Count, sample, seed);
        if (from >= drawn.Length) throw new CliException($"--from {from} is past the sample's {drawn.Length} images");
        var indices = drawn[from..Math.Min(drawn.Length, from + count)];
        var evaluator = new RobustnessEvaluator(clip, new TaptDefense(clip, artifact, options), vocabulary);
        var settings = new AttackSettings(kind, eps, o.Steps, o.StepSize, Restarts: o.Restarts, Queries: o.Queries);
        var sweep = sweepText is null ? null : new TaptSettingsSweep(clip, artifact, vocabulary, ParseSweep(sweepText, options), seed);
        EvaluationReport report;
        using (var progress = CliProgress.Start("eval", "images"))
        {
            // Inside a batch the count of images stands still (for hours under Square through the defense): say which model is attacked, and how far.
            var done = 0;
            var evaluationOptions = new EvaluationOptions(settings, protocol, seed, batch,
                kind == AttackKind.AutoAttackRand ? Math.Max(o.Eot, AutoAttack.RandomisedEotSamples) : o.Eot, attackViews)
            {
                ModelCalls = (method, calls) => progress.Report(done, indices.Length, $"this batch: {calls} calls of {method}"),
            };
            report = evaluator.Evaluate(data, indices, evaluationOptions, (d, total) => progress.Report(done = d, total), sweep is null ? null : sweep.Add);
        }
        return Print(o, report, options, artifact, sweep, indices.Length, drawn.Length);
    }

    private static int Print(Options run, EvaluationReport report, TaptOptions options, PromptArtifact artifact, TaptSettingsSweep? sweep, int evaluated, int drawn)
    {
        var (datasetName, split, sample, seed, from, _, kind, eps, _, _, _, _, _, _, _, _, json, _) = run;
        if (json)
        {
            var o = new JsonObject
            {
                ["n"] = report.N,
                ["eps"] = report.Epsilon,
                ["attack"] = report.Attack,
                ["protocol"] = report.Protocol,
                ["clean"] = new JsonObject { ["clip"] = report.Clean.Clip, ["apt"] = report.Clean.Apt, ["tapt"] = report.Clean.Tapt },
                ["robust"] = new JsonObject { ["clip"] = report.Robust.Clip, ["apt"] = report.Robust.Apt, ["tapt"] = report.Robust.Tapt },
                ["gradient"] = report.Gradient,
                ["dataset"] = datasetName,
                ["split"] = split,
                ["seed"] = seed,
                ["sample"] = sample,
                ["from"] = from,
                ["seconds_per_image"] = report.SecondsPerImage,
                ["tapt"] = new JsonObject { ["views"] = options.Views, ["steps"] = options.Steps, ["lr"] = options.LearningRate, ["alignment_weight"] = options.AlignmentWeight, ["view_min_scale"] = options.ViewMinScale, ["design"] = artifact.Shape.Design.ToString() },
            };
            if (report.ViewsVote is var (voteClean, voteRobust))
                o["views_vote"] = new JsonObject { ["clean"] = voteClean, ["robust"] = voteRobust };
            if (report.FlagRates is var (flagClean, flagRobust))
                o["statistics_flag_rate"] = new JsonObject { ["clean"] = flagClean, ["robust"] = flagRobust };
            if (report.QueriesPerImage is { } q)
                o["queries_per_image"] = new JsonObject { ["clip"] = q.Clip, ["apt"] = q.Apt, ["tapt"] = q.Tapt };
            if (report.Stages is { } stages)
                o["stages"] = new JsonArray(stages.Select(st => (JsonNode)new JsonObject
                {
                    ["attack"] = st.Stage,
                    ["clip"] = st.Robust.Clip,
                    ["apt"] = st.Robust.Apt,
                    ["tapt"] = double.IsNaN(st.Robust.Tapt) ? null : st.Robust.Tapt,
                }).ToArray());
            o["checks"] = new JsonArray(report.Checks.Select(c => (JsonNode)new JsonObject
            {
                ["check"] = c.Name,
                ["method"] = c.Method,
                ["warning"] = c.Warning,
                ["detail"] = c.Detail,
            }).ToArray());
            if (sweep is not null)
                o["tapt_sweep"] = new JsonArray(sweep.Results.Select(r => (JsonNode)new JsonObject
                {
                    ["lr"] = r.Settings.LearningRate,
                    ["steps"] = r.Settings.Steps,
                    ["alignment_weight"] = r.Settings.AlignmentWeight,
                    ["view_min_scale"] = r.Settings.ViewMinScale,
                    ["clean"] = r.Clean,
                    ["robust"] = r.Robust,
                    ["views_vote_robust"] = r.VoteRobust,
                    ["precision"] = TaptSettingOverrides.PrecisionName(r.Settings.Precision),
                    ["same_prediction_as_first"] = double.IsNaN(r.SamePrediction) ? null : r.SamePrediction,
                    ["same_selection_as_first"] = double.IsNaN(r.SameSelection) ? null : r.SameSelection,
                }).ToArray());
            Console.WriteLine(o.ToJsonString());
            return 0;
        }
        var part = from > 0 || evaluated < drawn ? $", images {from}..{from + evaluated - 1} of a {drawn}-image sample" : "";
        Console.WriteLine($"{report.N} images from {datasetName}/{split} (seed {seed}{part}); attack {report.Attack} ({AttackSettings.Describe(kind)}), eps {eps * 255:G4}/255, protocol {report.Protocol}");
        Console.WriteLine($"{"method",-8} {"clean",8} {"robust",8}");
        Console.WriteLine($"{"CLIP",-8} {report.Clean.Clip,8:P1} {report.Robust.Clip,8:P1}");
        Console.WriteLine($"{"APT",-8} {report.Clean.Apt,8:P1} {report.Robust.Apt,8:P1}");
        Console.WriteLine($"{"TAPT",-8} {report.Clean.Tapt,8:P1} {report.Robust.Tapt,8:P1}");
        if (report.ViewsVote is var (vClean, vRobust))
            Console.WriteLine($"{"(views)",-8} {vClean,8:P1} {vRobust,8:P1}   the selected views' vote before tuning; a step pulls TAPT towards it");
        if (report.FlagRates is var (fClean, fRobust))
            Console.WriteLine($"{"(flag)",-8} {fClean,8:P1} {fRobust,8:P1}   images the statistics flag (closer to the PGD-image reference) fires on");
        if (report.QueriesPerImage is { } queries)
            Console.WriteLine($"queries per image (mean, 0 for images already wrong): CLIP {queries.Clip:F0}, APT {queries.Apt:F0}, TAPT {queries.Tapt:F0}");
        foreach (var st in report.Stages ?? [])
            Console.WriteLine($"  after {st.Stage,-14} {"",8} CLIP {st.Robust.Clip:P1}  APT {st.Robust.Apt:P1}" +
                (double.IsNaN(st.Robust.Tapt) ? "  (TAPT: not attacked under this protocol)" : $"  TAPT {st.Robust.Tapt:P1}"));
        foreach (var c in report.Checks)
            Console.WriteLine($"{(c.Warning ? "WARNING" : "ok"),-8} {c.Name} ({c.Method}): {c.Detail}");
        if (sweep is not null)
        {
            Console.WriteLine("TAPT under other test-time settings, on the same clean and adversarial images:");
            Console.WriteLine($"  {"lr",-8} {"steps",5} {"align w",8} {"min crop",8} {"precision",-12} {"clean",8} {"robust",8} {"(views)",8} {"same pred",9} {"same views",10}   (same: as the first setting, clean and attacked)");
            foreach (var r in sweep.Results)
                Console.WriteLine($"  {r.Settings.LearningRate,-8:G4} {r.Settings.Steps,5} {r.Settings.AlignmentWeight,8:G4} {r.Settings.ViewMinScale,8:G4} " +
                    $"{TaptSettingOverrides.PrecisionName(r.Settings.Precision),-12} {r.Clean,8:P1} {r.Robust,8:P1} {r.VoteRobust,8:P1} " +
                    $"{(double.IsNaN(r.SamePrediction) ? "" : r.SamePrediction.ToString("P1")),9} {(double.IsNaN(r.SameSelection) ? "" : r.SameSelection.ToString("P1")),10}");
        }
        Console.WriteLine($"gradient: {report.Gradient}");
        Console.WriteLine($"{report.SecondsPerImage:F2} s per image (all methods and attacks)");
        return 0;
    }

    /// <summary>"LR:STEPS:WEIGHT,..." → settings derived from <paramref name="baseline"/>; weights accept fractions such as 100/9.</summary>
    public static IReadOnlyList<TaptOptions> ParseSweep(string text, TaptOptions baseline)
    {
        var list = new List<TaptOptions>();
        foreach (var item in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            CliException Malformed() => new($"--tapt-sweep: '{item}' is not LR:STEPS:WEIGHT[:VIEW_MIN_SCALE[:PRECISION]] (e.g. 0.02:1:0, 5e-4:1:100/9:0.08 or 0.02:1:0::bf16-scoring)");
            var parts = item.Split(':');
            if (parts.Length is not (3 or 4 or 5)
                || CliOptions.ParseNumber(parts[0]) is not { } lr
                || !int.TryParse(parts[1], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var steps)
                || CliOptions.ParseNumber(parts[2]) is not { } weight)
                throw Malformed();
            var minScale = parts.Length >= 4 && parts[3].Length > 0 ? CliOptions.ParseNumber(parts[3]) ?? throw Malformed() : baseline.ViewMinScale;
            var precision = parts.Length == 5 ? TaptSettingOverrides.ParsePrecision(parts[4]) : baseline.Precision;
            var setting = baseline with { LearningRate = lr, Steps = steps, AlignmentWeight = weight, ViewMinScale = minScale, Precision = precision };
            // The ranges are TaptOptions' own.
            try { setting.Validate(); }
            catch (ArgumentException e) { throw new CliException($"--tapt-sweep: '{item}': {e.Message}"); }
            list.Add(setting);
        }
        if (list.Count == 0) throw new CliException("--tapt-sweep lists no setting");
        return list;
    }
}
