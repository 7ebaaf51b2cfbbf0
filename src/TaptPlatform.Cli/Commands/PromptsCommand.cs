using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt prompts train|calibrate|show</c>: the offline stages of TAPT.</summary>
public static class PromptsCommand
{
    public const string Usage = """
        usage: tapt prompts train [--model DIR] [--out FILE] [--design V|VLI|VLJ] [--tokens 2] [--depth 9]
                                  [--dataset fashion-mnist|DIR] [--shots 16] [--epochs 10] [--batch 32] [--lr 0.0035]
                                  [--eps 1/255] [--attack-steps 2] [--seed 1] [--only adv|clean] [--resume] [--threads N]
               tapt prompts calibrate [--model DIR] [--prompts FILE] [--dataset fashion-mnist|DIR] [--images 2000]
                                  [--no-augment] [--attacked] [--eps 1/255] [--seed 2] [--threads N]
                                  [--tapt-lr 5e-4] [--tapt-steps 1] [--tapt-views 64] [--tapt-alignment-weight 11.11] [--tapt-view-min-scale 0.08]
                                  [--reference clean-images|pgd-images]
               tapt prompts show [--model DIR] [--prompts FILE]
        Training uses the train split only; the artifact defaults to MODEL/tapt-prompts.safetensors.
        """;

    public static int Run(string[] argv)
    {
        if (argv.Length == 0 || argv[0] is "--help" or "-h") { Console.WriteLine(Usage); return argv.Length == 0 ? 2 : 0; }
        return argv[0] switch
        {
            "train" => Train(argv[1..]),
            "calibrate" => Calibrate(argv[1..]),
            "show" => Show(argv[1..]),
            _ => throw new CliException($"unknown sub-command '{argv[0]}' (train, calibrate or show)"),
        };
    }

    private static int Train(string[] argv)
    {
        var a = new CliArgs(argv, ["resume"]);
        var device = DeviceOption.Parse(a.Optional("device"));
        Threads.Apply(a);
        var (ckpt, clip) = Session.LoadModel(a, device);
        using var _ = ckpt;
        var outPath = a.Optional("out") ?? Path.Combine(ckpt.Directory, Session.DefaultArtifactName);
        var design = PromptShape.ParseDesign(a.Optional("design") ?? "VLI");
        var tokens = a.Int("tokens", 2, 1, 64);
        var depth = a.Int("depth", 9, 1, 64);
        var datasetName = a.Optional("dataset") ?? "fashion-mnist";
        var shots = a.Int("shots", 16, 1, 100_000);
        var seed = a.Int("seed", 1);
        var only = a.Optional("only");
        var resume = a.Flag("resume");
        var options = new AptOptions
        {
            Epochs = a.Int("epochs", 10, 1, 10_000),
            BatchSize = a.Int("batch", 32, 2, 4096),
            LearningRate = a.Double("lr", 0.0035, 0, 10),
            Epsilon = a.Double("eps", 1.0 / 255, 0, 1),
            AttackSteps = a.Int("attack-steps", 2, 1, 1000),
            Seed = seed,
        };
        a.RejectUnknown();
        if (only is not (null or "adv" or "clean")) throw new CliException("--only must be adv or clean");

        var data = Session.LoadDataset(datasetName, "train", ckpt);
        var vocabulary = Session.Vocabulary(data);
        var indices = DatasetSampling.PerClass(data, shots, seed);
        var shape = PromptShape.For(design, ckpt.Config.Vision.NumHiddenLayers, ckpt.Config.Text.NumHiddenLayers, tokens, depth);
        Console.Error.WriteLine($"APT: design {shape.Design}, {shape.TokensPerLayer} tokens × depth {shape.VisionDepth} (vision) / {shape.TextDepth} (text); {indices.Length} training images ({shots} per class) from {datasetName}");

        PromptArtifact? existing = File.Exists(outPath) && only is not null ? PromptArtifact.Load(outPath, ckpt) : null;
        var clock = Stopwatch.StartNew();
        PromptSet TrainOne(bool adversarial)
        {
            var name = adversarial ? "adv" : "clean";
            var statePath = outPath + $".{name}.state";
            if (!resume && File.Exists(statePath)) File.Delete(statePath);
            var prompts = PromptSet.Initialise(shape, ckpt.Model, ckpt.Tokenizer, new Generator((ulong)seed));
            var trainer = new AptTrainer(clip, options with { Adversarial = adversarial });
            var last = DateTime.MinValue;
            trainer.Train(prompts, vocabulary, data, indices, statePath, p =>
            {
                if ((DateTime.UtcNow - last).TotalSeconds < 1 && p.Step != p.StepsPerEpoch) return;
                last = DateTime.UtcNow;
                var adv = double.IsNaN(p.AdversarialAccuracy) ? "" : $" adv-acc {p.AdversarialAccuracy:P1}";
                Console.Error.Write($"\r[{name}] epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.StepsPerEpoch} lr {p.LearningRate:G3} loss {p.Loss:F4} clean-acc {p.CleanAccuracy:P1}{adv} {p.ImagesPerSecond:F0} img/s   ");
                if (p.Step == p.StepsPerEpoch) Console.Error.WriteLine();
            });
            File.Delete(statePath);
            return prompts;
        }
        var adv = only is null or "adv" ? TrainOne(true) : existing!.Adversarial.Clone();
        var clean = only is null or "clean" ? TrainOne(false) : existing!.Clean?.Clone();
        var provenance = new JsonObject
        {
            ["apt"] = new JsonObject
            {
                ["command"] = "tapt prompts train " + string.Join(' ', argv),
                ["dataset"] = datasetName,
                ["split"] = "train",
                ["images"] = indices.Length,
                ["epochs"] = options.Epochs,
                ["batch"] = options.BatchSize,
                ["lr"] = options.LearningRate,
                ["eps"] = options.Epsilon,
                ["attack_steps"] = options.AttackSteps,
                ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            },
        };
        using var artifact = new PromptArtifact
        {
            Shape = shape,
            ModelChecksum = ckpt.Checksum,
            Adversarial = adv,
            Clean = clean,
            AdversarialStatistics = existing?.AdversarialStatistics,
            CleanStatistics = existing?.CleanStatistics,
            AttackedStatistics = existing?.AttackedStatistics,
            Provenance = provenance,
        };
        artifact.Save(outPath);
        Console.WriteLine($"wrote {outPath} ({clock.Elapsed.TotalSeconds:F0} s); next: tapt prompts calibrate --prompts {outPath}");
        return 0;
    }

    private static int Calibrate(string[] argv)
    {
        var a = new CliArgs(argv, ["no-augment", "attacked"]);
        var device = DeviceOption.Parse(a.Optional("device"));
        Threads.Apply(a);
        var (ckpt, clip) = Session.LoadModel(a, device);
        using var _ = ckpt;
        var path = a.Optional("prompts") ?? Path.Combine(ckpt.Directory, Session.DefaultArtifactName);
        var datasetName = a.Optional("dataset") ?? "fashion-mnist";
        var count = a.Int("images", 2000, 2, 1_000_000);
        var augment = !a.Flag("no-augment");
        var attacked = a.Flag("attacked");
        var eps = a.Double("eps", 1.0 / 255, 0, 1);
        var seed = a.Int("seed", 2);
        var reference = a.Optional("reference");
        if (reference is not (null or "clean-images" or "pgd-images")) throw new CliException("--reference must be clean-images or pgd-images");
        if (reference == "pgd-images" && !attacked) throw new CliException("--reference pgd-images needs --attacked");
        using var artifact = Session.LoadArtifact(path, ckpt);
        // The test-time settings recorded for this model; the library defaults stay the paper's.
        var settings = TaptSettingOverrides.Apply(a, artifact.Settings, "tapt-");
        a.RejectUnknown();
        if (artifact.Clean is null) throw new CliException($"{path} has no clean prompts; run 'tapt prompts train' without --only");
        var data = Session.LoadDataset(datasetName, "train", ckpt);
        var vocabulary = Session.Vocabulary(data);
        var indices = DatasetSampling.Sample(data.Count, count, seed);
        var layers = ckpt.Config.Vision.NumHiddenLayers;
        var augmenter = new ViewAugmenter();
        var clock = Stopwatch.StartNew();

        // The same augmentation the test-time views get (their code calibrates with train-time augmentation).
        IEnumerable<Tensor> Batches(bool pgd)
        {
            var rng = new Random(seed);
            var generator = new Generator((ulong)seed);
            var attack = new PgdAttack(eps, 2, eps, randomStart: true, AttackLosses.CrossEntropy, "PGD");
            for (var s = 0; s < indices.Length; s += 64)
            {
                var batch = indices.Skip(s).Take(64).ToArray();
                using var scope = NewDisposeScope();
                var x = data.Images(batch, clip.ImageSize).to(clip.Device);
                if (pgd)
                {
                    var y = tensor(batch.Select(i => (long)data.Label(i)).ToArray()).to(clip.Device);
                    x = attack.Perturb(img => clip.Classify(img, vocabulary, artifact.Adversarial), x, y, generator);
                }
                if (augment)
                {
                    using var __ = no_grad();
                    x = stack(Enumerable.Range(0, batch.Length).Select(i =>
                        ViewAugmenter.Apply(x[i], augmenter.Sample(clip.ImageSize, clip.ImageSize, rng), clip.ImageSize, clip.ImageSize).squeeze(0)).ToArray());
                }
                x.MoveToOuterDisposeScope();
                yield return x;
                x.Dispose();
                Console.Error.Write($"\r  {Math.Min(s + 64, indices.Length)}/{indices.Length} images   ");
            }
            Console.Error.WriteLine();
        }
        var how = augment ? "train images, RandomResizedCrop+flip views" : "train images, unaugmented";
        Console.Error.WriteLine($"statistics of P_adv on clean images ({indices.Length})");
        var advStats = StatisticsCalibrator.Compute(clip, artifact.Adversarial, Batches(false), layers, $"P_adv, clean {how}");
        Console.Error.WriteLine("statistics of P_clean on clean images");
        var cleanStats = StatisticsCalibrator.Compute(clip, artifact.Clean, Batches(false), layers, $"P_clean, clean {how}");
        ReferenceStatistics? attackedStats = null;
        if (attacked)
        {
            Console.Error.WriteLine($"statistics of P_adv on PGD-2 images (eps {eps:G4})");
            attackedStats = StatisticsCalibrator.Compute(clip, artifact.Adversarial, Batches(true), layers, $"P_adv, PGD-2 eps={eps:G4} {how}");
        }
        var provenance = (JsonObject)artifact.Provenance.DeepClone();
        provenance["calibration"] = new JsonObject
        {
            ["command"] = "tapt prompts calibrate " + string.Join(' ', argv),
            ["dataset"] = datasetName,
            ["split"] = "train",
            ["images"] = indices.Length,
            ["augment"] = augment,
            ["attacked"] = attacked,
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
        };
        using var updated = new PromptArtifact
        {
            Shape = artifact.Shape,
            ModelChecksum = artifact.ModelChecksum,
            Adversarial = artifact.Adversarial,
            Clean = artifact.Clean,
            AdversarialStatistics = advStats,
            CleanStatistics = cleanStats,
            AttackedStatistics = attackedStats ?? artifact.AttackedStatistics,
            AdversarialReferenceSource = reference ?? artifact.AdversarialReferenceSource,
            Settings = settings,
            Provenance = provenance,
        };
        updated.Save(path);
        Console.WriteLine($"calibrated {path} on {indices.Length} images in {clock.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    private static int Show(string[] argv)
    {
        var a = new CliArgs(argv, []);
        var device = DeviceOption.Parse(a.Optional("device"));
        var (ckpt, _) = Session.LoadModel(a, device);
        using var __ = ckpt;
        var path = a.Optional("prompts");
        a.RejectUnknown();
        using var artifact = Session.LoadArtifact(path, ckpt);
        Console.WriteLine($"design {artifact.Shape.Design}, {artifact.Shape.TokensPerLayer} tokens, depth {artifact.Shape.VisionDepth} vision / {artifact.Shape.TextDepth} text");
        Console.WriteLine($"model {artifact.ModelChecksum}");
        foreach (var (name, s) in new[] { ("adversarial", artifact.AdversarialStatistics), ("clean", artifact.CleanStatistics), ("attacked", artifact.AttackedStatistics) })
            Console.WriteLine($"statistics {name}: {(s is null ? "none" : $"{s.Layers} layers, {s.Images} images ({s.Description})")}");
        Console.WriteLine($"settings {System.Text.Json.JsonSerializer.Serialize(artifact.Settings)}");
        Console.WriteLine($"provenance {artifact.Provenance.ToJsonString()}");
        return 0;
    }
}

/// <summary>--threads N sets torch's intra-op threads (default: all cores).</summary>
public static class Threads
{
    public static void Apply(CliArgs a)
    {
        var n = a.Int("threads", 0, 0, 1024);
        if (n > 0) set_num_threads(n);
    }
}
