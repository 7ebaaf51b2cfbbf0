using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Training;

// The resumable state of a training run: what is saved, how a run is recognised, and where it resumes.
public static partial class ClipTrainer
{
    /// <summary>The step to start from: a saved state's with --resume, else 0; refuses to resume over a finished model.</summary>
    private static int StartStep(ClipTrainingOptions o, string stateRoot, string signature, ClipModel model, AdamW optimizer,
        TrainingProgress progress, int totalSteps, TextWriter log)
    {
        if (!o.Resume)
        {
            if (Directory.Exists(stateRoot)) log.WriteLine($"ignoring the saved state in {stateRoot} (no --resume); it will be overwritten");
            return 0;
        }
        if (TryLoadState(stateRoot, signature, model, optimizer, progress, out var loadedStep))
        {
            log.WriteLine($"resuming from step {loadedStep}/{totalSteps} ({stateRoot})");
            return loadedStep;
        }
        if (File.Exists(Path.Combine(o.OutputDirectory, "model.safetensors")))
            throw new InvalidDataException($"{o.OutputDirectory} already holds a finished model and no saved training state; nothing to resume (train without --resume to overwrite it)");
        log.WriteLine($"no saved training state in {stateRoot}; starting from step 0");
        return 0;
    }

    /// <summary>One step of the symmetric contrastive loss on a batch of augmented images and one random caption each; returns the loss.</summary>
    private static float TrainStep(ClipTrainingOptions o, ClipConfig config, ClipModel model, AdamW optimizer, LabelledImages train, int[][][] captionIds,
        ArraySegment<int> batchIdx, Random rng, List<Parameter> allParameters, Parameter logitScale)
    {
        using var scope = NewDisposeScope();
        var rows = new List<int[]>(o.BatchSize);
        foreach (var i in batchIdx)
        {
            var options = captionIds[train.Labels[i]];
            rows.Add(options[rng.Next(options.Length)]);
        }
        var grey = train.GreyTensor(batchIdx);
        var images = o.Augmentation.Apply(grey, config.Vision.ImageSize, rng).expand(-1, config.Vision.NumChannels, -1, -1);
        var ids = TokenBatch.Pad(rows, config.Text.PadTokenId);
        var logits = model.Logits(model.EncodeImage(images), model.EncodeText(ids));
        using var batchSize = o.BatchSize.ToScalar();
        var targets = arange(batchSize, dtype: ScalarType.Int64);
        var l = nn.functional.cross_entropy(logits, targets).Plus(nn.functional.cross_entropy(logits.t(), targets)).div(Two);
        optimizer.zero_grad();
        l.backward();
        if (o.GradientClip > 0) nn.utils.clip_grad_norm_(allParameters, o.GradientClip);
        optimizer.step();
        using (no_grad()) logitScale.clamp_(Zero, MaxLogitScaleScalar);
        return l.item<float>();
    }

    private static (LabelledImages Train, LabelledImages? Holdout) Split(LabelledImages all, int holdout, int seed)
    {
        if (holdout == 0) return (all, null);
        if (holdout >= all.Count) throw new ArgumentException($"a hold-out of {holdout} leaves no training images (of {all.Count})");
        var order = Enumerable.Range(0, all.Count).ToArray();
        new Random(StepSeed(seed, -12345)).Shuffle(order);
        return (all.Subset(order[holdout..].Order().ToArray()), all.Subset(order[..holdout].Order().ToArray()));
    }

    private static int[] EpochOrder(int count, int seed, int epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        new Random(StepSeed(seed, -1 - epoch)).Shuffle(order);
        return order;
    }

    /// <summary>A seed for (run seed, step): SplitMix64 of both, so nearby steps get unrelated streams.</summary>
    internal static int StepSeed(int seed, long step)
    {
        unchecked
        {
            var z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)step + 0x632BE59BD9B4E019UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (int)(z & 0x7FFFFFFF);
        }
    }

    private static string Signature(ClipTrainingOptions o, ClipConfig config, int trainCount, int holdoutCount) => new JsonObject
    {
        ["config"] = JsonNode.Parse(config.ToJson()),
        ["epochs"] = o.Epochs,
        ["batch"] = o.BatchSize,
        ["lr"] = o.LearningRate,
        ["weight_decay"] = o.WeightDecay,
        ["warmup_fraction"] = o.WarmupFraction,
        ["min_lr_fraction"] = o.MinLearningRateFraction,
        ["seed"] = o.Seed,
        ["train_images"] = trainCount,
        ["holdout"] = holdoutCount,
        ["augmentation"] = string.Create(CultureInfo.InvariantCulture, $"{o.Augmentation.MinScale}/{o.Augmentation.FlipProbability}/{o.Augmentation.Probability}"),
        ["captions"] = o.Captions.Corpus().Count(),
    }.ToJsonString();

    private static void SaveState(string root, string signature, int step, ClipModel model, AdamW optimizer, TrainingProgress progress)
    {
        Directory.CreateDirectory(root);
        var name = $"step-{step:D7}";
        var dir = Path.Combine(root, name);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        SafeTensorsFile.Write(Path.Combine(dir, "model.safetensors"), model.state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
        optimizer.save_state_dict(Path.Combine(dir, "optimizer.bin"));
        var state = new JsonObject
        {
            ["step"] = step,
            ["signature"] = signature,
            ["epoch_losses"] = new JsonArray(progress.EpochLosses.Select(l => (JsonNode)l).ToArray()),
            ["epoch_loss_sum"] = progress.EpochSum,
            ["epoch_loss_count"] = progress.EpochCount,
        };
        File.WriteAllText(Path.Combine(dir, "state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        // The pointer flips atomically, so an interrupted save leaves the previous state usable.
        var latest = Path.Combine(root, "latest");
        File.WriteAllText(latest + ".tmp", name);
        File.Move(latest + ".tmp", latest, overwrite: true);
        foreach (var old in Directory.GetDirectories(root, "step-*"))
            if (Path.GetFileName(old) != name) Directory.Delete(old, recursive: true);
    }

    private static bool TryLoadState(string root, string signature, ClipModel model, AdamW optimizer, TrainingProgress progress, out int step)
    {
        step = 0;
        var latest = Path.Combine(root, "latest");
        if (!File.Exists(latest)) return false;
        var dir = Path.Combine(root, File.ReadAllText(latest).Trim());
        var statePath = Path.Combine(dir, "state.json");
        if (!File.Exists(statePath)) throw new InvalidDataException($"training state {dir} is incomplete (no state.json)");
        var state = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject ?? throw new InvalidDataException($"{statePath} is not a JSON object");
        if (state["signature"]?.GetValue<string>() != signature)
            throw new InvalidDataException($"the training state in {root} was saved by a run with different settings (architecture, epochs, batch, learning rate, seed or data); " +
                                           "resume with the same options, or start again without --resume");
        ClipCheckpoint.LoadWeights(model, Path.Combine(dir, "model.safetensors"));
        optimizer.load_state_dict(Path.Combine(dir, "optimizer.bin"));
        step = state["step"]!.GetValue<int>();
        progress.Restore(
            state["epoch_losses"]!.AsArray().Select(n => n!.GetValue<double>()),
            state["epoch_loss_sum"]!.GetValue<double>(),
            state["epoch_loss_count"]!.GetValue<int>());
        return true;
    }

    /// <summary>Loss book-keeping: per-epoch means and a recent window for the progress line.</summary>
    private sealed class TrainingProgress
    {
        private readonly Queue<double> _recent = new();
        private readonly List<double> _epochLosses = [];

        public IReadOnlyList<double> EpochLosses => _epochLosses;
        public double EpochSum { get; private set; }
        public int EpochCount { get; private set; }
        public double RecentMean => _recent.Count == 0 ? double.NaN : _recent.Average();

        public void Add(double loss)
        {
            EpochSum += loss;
            EpochCount++;
            _recent.Enqueue(loss);
            while (_recent.Count > 20) _recent.Dequeue();
        }

        public double CloseEpoch()
        {
            var mean = EpochCount == 0 ? double.NaN : EpochSum / EpochCount;
            _epochLosses.Add(mean);
            EpochSum = 0;
            EpochCount = 0;
            return mean;
        }

        public void Restore(IEnumerable<double> epochLosses, double sum, int count)
        {
            _epochLosses.Clear();
            _epochLosses.AddRange(epochLosses);
            EpochSum = sum;
            EpochCount = count;
        }
    }
}
