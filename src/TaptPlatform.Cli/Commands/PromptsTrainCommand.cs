using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaptPlatform.Cli.Progress;
using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt prompts train</c>: APT, the adversarial (and clean) prompts of a prompt artifact.</summary>
public static class PromptsTrainCommand
{
    private sealed record Setup(string OutPath, PromptShape Shape, string DatasetName, int Shots, int Seed, string? Only, bool Resume, AptOptions Options);

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var output = CliOptions.Text("--out", $"the prompt artifact to write (default: MODEL/{Session.DefaultArtifactName})", "FILE");
        var design = CliOptions.Defaulted("--design", "VLI", "prompt design: V, VLI or VLJ", "V|VLI|VLJ");
        design.CompletionSources.Add("V", "VLI", "VLJ");
        var tokens = CliOptions.Int("--tokens", 2, "prompt tokens per layer", 1, 64);
        var depth = CliOptions.Int("--depth", 9, "prompted layers", 1, 64);
        var dataset = CliOptions.Defaulted("--dataset", "fashion-mnist", "fashion-mnist, or a folder with one sub-folder per label", "fashion-mnist|DIR");
        var shots = CliOptions.Int("--shots", 16, "training images per class", 1, 100_000);
        var epochs = CliOptions.Int("--epochs", 10, "epochs", 1, 10_000);
        var batch = CliOptions.Int("--batch", 32, "images per batch", 2, 4096);
        var lr = CliOptions.Number("--lr", 0.0035, "peak learning rate", 0, 10);
        var eps = CliOptions.Number("--eps", 1.0 / 255, "PGD budget of the adversarial half of each batch", 0, 1);
        var attackSteps = CliOptions.Int("--attack-steps", 2, "PGD steps", 1, 1000);
        var seed = CliOptions.Int("--seed", 1, "seed of the shots, the prompts and the attacks");
        var only = CliOptions.OptionalChoice("--only", "train only the adversarial or the clean prompts, keeping the artifact's other ones", "adv", "clean");
        var resume = CliOptions.Flag("--resume", "continue from the state saved after the last finished epoch");
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("train", """
            Trains the APT prompts of a TAPT prompt artifact: adversarial prompts and clean ones.
            Training uses the train split only; the artifact defaults to MODEL/tapt-prompts.safetensors.
            """)
        {
            model, output, design, tokens, depth, dataset, shots, epochs, batch, lr, eps, attackSteps, seed, only, resume, device, threads,
        };
        command.SetAction(r =>
        {
            var dev = DeviceOption.Parse(r.GetValue(device));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var (ckpt, clip) = Session.LoadModel(r.GetValue(model), dev);
            using var _ = ckpt;
            var options = new AptOptions
            {
                Epochs = r.GetValue(epochs),
                BatchSize = r.GetValue(batch),
                LearningRate = r.GetValue(lr),
                Epsilon = r.GetValue(eps),
                AttackSteps = r.GetValue(attackSteps),
                Seed = r.GetValue(seed),
            };
            var shape = PromptShape.For(PromptShape.ParseDesign(r.GetValue(design)!), ckpt.Config.Vision.NumHiddenLayers, ckpt.Config.Text.NumHiddenLayers,
                r.GetValue(tokens), r.GetValue(depth));
            var setup = new Setup(r.GetValue(output) ?? Path.Combine(ckpt.Directory, Session.DefaultArtifactName), shape, r.GetValue(dataset)!,
                r.GetValue(shots), r.GetValue(seed), r.GetValue(only), r.GetValue(resume), options);
            return Execute(setup, ckpt, clip, TaptCli.ArgumentsOf(r));
        });
        return command;
    }

    private static int Execute(Setup setup, Vision.Clip.ClipCheckpoint ckpt, PromptedClip clip, string commandLine)
    {
        var (outPath, shape, datasetName, shots, seed, only, resume, options) = setup;
        var data = Session.LoadDataset(datasetName, "train", ckpt);
        var vocabulary = Session.Vocabulary(data);
        var indices = DatasetSampling.PerClass(data, shots, seed);
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
            using var progress = CliProgress.Start($"prompts train [{name}]", "steps");
            trainer.Train(prompts, vocabulary, data, indices, statePath, p =>
            {
                var adv = double.IsNaN(p.AdversarialAccuracy) ? "" : $" adv-acc {p.AdversarialAccuracy:P1}";
                var line = $"epoch {p.Epoch}/{p.Epochs} lr {p.LearningRate:G3} loss {p.Loss:F4} clean-acc {p.CleanAccuracy:P1}{adv} {p.ImagesPerSecond:F0} img/s";
                progress.Report((long)(p.Epoch - 1) * p.StepsPerEpoch + p.Step, (long)p.Epochs * p.StepsPerEpoch, line);
                // Each epoch's summary stays as a line of its own.
                if (p.Step == p.StepsPerEpoch) progress.WriteLine($"[{name}] {line}");
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
                ["command"] = "tapt prompts train " + commandLine,
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
}
