using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt eval</c>: clean and robust accuracy of CLIP, APT and TAPT.</summary>
public static class EvalCommand
{
    public const string Usage = """
        usage: tapt eval [--model DIR] [--prompts FILE] [--dataset fashion-mnist|DIR] [--split test] [--sample N] [--seed S] [--from K] [--sample-count N]
                         [--attack pgd|cw|di|apgd|apgd-t] [--eps 1/255] [--steps 100] [--step-size 1/255] [--restarts 1]
                         [--protocol nonadaptive|adaptive] [--eot 1] [--attack-views 0] [--views 64] [--tapt-steps 1] [--tapt-lr X] [--tapt-alignment-weight W] [--batch 16] [--json]
                         [--tapt-view-min-scale 0.08] [--tapt-sweep LR:STEPS:WEIGHT[:VIEW_MIN_SCALE][,...]]
        TAPT settings default to the prompt artifact's. --tapt-sweep (non-adaptive) also runs TAPT under each listed
        setting (learning rate, steps, alignment weight, smallest view crop area) on the same clean and adversarial images.
        --from K evaluates the sample from its K-th image (0-based) on, so a long evaluation can run as several processes
        on disjoint parts of one sample (e.g. --sample 1000 --from 500 --sample-count 500); their accuracies combine by
        weighting with n. The attacks' random starts differ from a single run's.
        """;

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, ["json"]);
        var device = DeviceOption.Parse(a.Optional("device"));
        Threads.Apply(a);
        var datasetName = a.Optional("dataset") ?? "fashion-mnist";
        var split = a.Optional("split") ?? "test";
        var sample = a.Int("sample", 1000, 1, 1_000_000);
        var seed = a.Int("seed", 0);
        var from = a.Int("from", 0, 0, 1_000_000);
        var count = a.Int("sample-count", 1_000_000, 1, 1_000_000);
        AttackKind kind;
        try { kind = AttackSettings.ParseKind(a.Optional("attack") ?? "pgd"); }
        catch (FormatException e) { throw new CliException(e.Message); }
        var eps = a.Double("eps", 1.0 / 255, 0, 1);
        var steps = a.Int("steps", 100, 1, 100_000);
        var stepSize = a.Optional("step-size") is null ? (double?)null : a.Double("step-size", 1.0 / 255, 0, 1);
        var restarts = a.Int("restarts", 1, 1, 100);
        var protocolText = a.Optional("protocol") ?? "nonadaptive";
        var protocol = protocolText switch
        {
            "nonadaptive" or "non-adaptive" => EvaluationProtocol.NonAdaptive,
            "adaptive" => EvaluationProtocol.Adaptive,
            _ => throw new CliException("--protocol must be nonadaptive or adaptive"),
        };
        var eot = a.Int("eot", 1, 1, 100);
        var attackViews = a.Int("attack-views", 0, 0, 1024);
        if (attackViews > 0 && protocol != EvaluationProtocol.Adaptive) throw new CliException("--attack-views attacks through the defense; it needs --protocol adaptive");
        var batch = a.Int("batch", 16, 1, 1024);
        var sweepText = a.Optional("tapt-sweep");
        if (sweepText is not null && protocol != EvaluationProtocol.NonAdaptive) throw new CliException("--tapt-sweep compares settings on the same adversarial images; it needs --protocol nonadaptive");
        var json = a.Flag("json");
        var promptsPath = a.Optional("prompts");
        var (ckpt, clip) = Session.LoadModel(a, device);
        using var _ = ckpt;
        using var artifact = Session.LoadArtifact(promptsPath, ckpt);
        var options = TaptSettingOverrides.Apply(a, artifact.Settings, "tapt-", viewsOption: "views");
        a.RejectUnknown();

        var data = Session.LoadDataset(datasetName, split, ckpt);
        var vocabulary = Session.Vocabulary(data);
        var drawn = DatasetSampling.Sample(data.Count, sample, seed);
        if (from >= drawn.Length) throw new CliException($"--from {from} is past the sample's {drawn.Length} images");
        var indices = drawn[from..Math.Min(drawn.Length, from + count)];
        var evaluator = new RobustnessEvaluator(clip, new TaptDefense(clip, artifact, options), vocabulary);
        var settings = new AttackSettings(kind, eps, steps, stepSize, Restarts: restarts);
        var sweep = sweepText is null ? null : new TaptSettingsSweep(clip, artifact, vocabulary, ParseSweep(sweepText, options), seed);
        var report = evaluator.Evaluate(data, indices, new EvaluationOptions(settings, protocol, seed, batch, eot, attackViews),
            (done, total) => Console.Error.Write($"\r  {done}/{total} images   "), sweep is null ? null : sweep.Add);
        Console.Error.WriteLine();

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
                }).ToArray());
            Console.WriteLine(o.ToJsonString());
            return 0;
        }
        var part = from > 0 || indices.Length < drawn.Length ? $", images {from}..{from + indices.Length - 1} of a {drawn.Length}-image sample" : "";
        Console.WriteLine($"{report.N} images from {datasetName}/{split} (seed {seed}{part}); attack {report.Attack} ({AttackSettings.Describe(kind)}), eps {eps * 255:G4}/255, protocol {report.Protocol}");
        Console.WriteLine($"{"method",-8} {"clean",8} {"robust",8}");
        Console.WriteLine($"{"CLIP",-8} {report.Clean.Clip,8:P1} {report.Robust.Clip,8:P1}");
        Console.WriteLine($"{"APT",-8} {report.Clean.Apt,8:P1} {report.Robust.Apt,8:P1}");
        Console.WriteLine($"{"TAPT",-8} {report.Clean.Tapt,8:P1} {report.Robust.Tapt,8:P1}");
        if (report.ViewsVote is var (vClean, vRobust))
            Console.WriteLine($"{"(views)",-8} {vClean,8:P1} {vRobust,8:P1}   the selected views' vote before tuning; a step pulls TAPT towards it");
        if (report.FlagRates is var (fClean, fRobust))
            Console.WriteLine($"{"(flag)",-8} {fClean,8:P1} {fRobust,8:P1}   images the statistics flag (closer to the PGD-image reference) fires on");
        if (sweep is not null)
        {
            Console.WriteLine("TAPT under other test-time settings, on the same clean and adversarial images:");
            Console.WriteLine($"  {"lr",-8} {"steps",5} {"align w",8} {"min crop",8} {"clean",8} {"robust",8} {"(views)",8}");
            foreach (var r in sweep.Results)
                Console.WriteLine($"  {r.Settings.LearningRate,-8:G4} {r.Settings.Steps,5} {r.Settings.AlignmentWeight,8:G4} {r.Settings.ViewMinScale,8:G4} {r.Clean,8:P1} {r.Robust,8:P1} {r.VoteRobust,8:P1}");
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
            CliException Malformed() => new($"--tapt-sweep: '{item}' is not LR:STEPS:WEIGHT[:VIEW_MIN_SCALE] (e.g. 0.02:1:0 or 5e-4:1:100/9:0.08)");
            var parts = item.Split(':');
            if (parts.Length is not (3 or 4)
                || CliArgs.ParseNumber(parts[0]) is not { } lr
                || !int.TryParse(parts[1], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var steps)
                || CliArgs.ParseNumber(parts[2]) is not { } weight)
                throw Malformed();
            var minScale = parts.Length == 4 ? CliArgs.ParseNumber(parts[3]) ?? throw Malformed() : baseline.ViewMinScale;
            var setting = baseline with { LearningRate = lr, Steps = steps, AlignmentWeight = weight, ViewMinScale = minScale };
            // The ranges are TaptOptions' own.
            try { setting.Validate(); }
            catch (ArgumentException e) { throw new CliException($"--tapt-sweep: '{item}': {e.Message}"); }
            list.Add(setting);
        }
        if (list.Count == 0) throw new CliException("--tapt-sweep lists no setting");
        return list;
    }
}
