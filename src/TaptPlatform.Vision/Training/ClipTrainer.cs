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

namespace TaptPlatform.Vision.Training;

/// <summary>
/// Trains CLIP from scratch, contrastively, on Fashion-MNIST's training split with captions from
/// <see cref="CaptionSet"/>: symmetric cross-entropy over the batch's image–caption similarities with
/// the learnable temperature (logit_scale clamped to [0, ln 100] as CLIP does), AdamW with linear
/// warm-up then cosine decay, light augmentation, transformers' weight initialisation and a byte-level
/// BPE tokenizer learnt from the captions. Everything random is a function of the seed and the step,
/// so a run resumed from <c>&lt;out&gt;/.train-state/</c> continues exactly where it stopped.
/// The result is a standard Hugging Face CLIP directory.
/// </summary>
public static class ClipTrainer
{
    // The recipe of the shipped model (models/fashion-clip-small).
    public const int DefaultEpochs = 10;
    public const int DefaultBatchSize = 128;
    public const double DefaultLearningRate = 2e-3;
    public const int DefaultSeed = 0;

    public const string StateFolder = ".train-state";

    /// <summary>Fashion-MNIST training-split pixel mean and standard deviation (grey, so the same in R, G and B).</summary>
    public static readonly float[] FashionMnistMean = [0.2860f, 0.2860f, 0.2860f];
    public static readonly float[] FashionMnistStd = [0.3530f, 0.3530f, 0.3530f];

    public static readonly double MaxLogitScale = Math.Log(100);

    /// <summary>
    /// The shipped augmentation: three quarters of the images get a random resized crop (area 0.08–1, the range of
    /// TAPT's views) and a 50% horizontal flip. A model that never saw such crops classifies TAPT's views badly, and
    /// the test-time step then follows a vote that is worse than the image itself (README, "Measured robustness").
    /// </summary>
    public static Augmentation DefaultAugmentation { get; } = new(MinScale: 0.08, FlipProbability: 0.5, Probability: 0.75);

    /// <summary>The shipped architecture: 56×56 input (Fashion-MNIST upsampled), 14×14 patches (16 + 1 tokens).</summary>
    public static ClipConfig DefaultConfig() => new()
    {
        Text = new ClipTextConfig
        {
            VocabSize = 1024, // replaced by the trained tokenizer's size
            HiddenSize = 96,
            IntermediateSize = 384,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            MaxPositionEmbeddings = 32,
            HiddenAct = "quick_gelu",
        },
        Vision = new ClipVisionConfig
        {
            HiddenSize = 128,
            IntermediateSize = 512,
            NumHiddenLayers = 4,
            NumAttentionHeads = 4,
            ImageSize = 56,
            PatchSize = 14,
            HiddenAct = "quick_gelu",
        },
        ProjectionDim = 128,
    };

    public static ClipTrainingResult Train(ClipTrainingOptions o, CancellationToken cancel = default)
    {
        o.Validate();
        var log = o.Log ?? TextWriter.Null;
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        var wall = Stopwatch.StartNew();

        // Data: the training split only; an optional hold-out carved from it.
        var all = FashionMnist.Load("train", o.DataRoot);
        if (o.TrainLimit > 0) all = FashionMnist.Sample(all, o.TrainLimit, o.Seed);
        var (train, holdout) = Split(all, o.Holdout, o.Seed);
        if (o.Captions.ClassCount != train.ClassNames.Count)
            throw new ArgumentException($"the captions cover {o.Captions.ClassCount} classes, the data has {train.ClassNames.Count}");
        var stepsPerEpoch = train.Count / o.BatchSize;
        if (stepsPerEpoch < 1) throw new ArgumentException($"{train.Count} training images are fewer than one batch of {o.BatchSize}");
        var totalSteps = stepsPerEpoch * o.Epochs;
        var warmup = Math.Max(1, (int)Math.Round(o.WarmupFraction * totalSteps));

        // Tokenizer learnt from the captions; the config takes its size and special ids.
        var bpe = BpeTrainer.Train(o.Captions.Corpus());
        var config = o.Config with
        {
            Text = o.Config.Text with { VocabSize = bpe.Size, BosTokenId = bpe.Vocab[ClipTokenizer.StartToken], EosTokenId = bpe.Vocab[ClipTokenizer.EndToken] },
        };
        config.Validate();
        var tokenizer = bpe.ToTokenizer(config.Text.MaxPositionEmbeddings);
        var captionIds = o.Captions.Captions.Select(c => c.Select(tokenizer.Encode).ToArray()).ToArray();

        manual_seed(o.Seed);
        using var model = new ClipModel(config);
        using (var generator = new Generator((ulong)(uint)o.Seed))
            ClipInitialiser.Initialise(model, generator: generator);
        model.SetNormalisation(o.ImageMean, o.ImageStd);
        model.train();
        var parameterCount = model.parameters().Sum(p => p.numel());

        var named = model.named_parameters().ToList();
        using var optimizer = CreateOptimizer(named, o);
        var logitScale = named.Single(np => np.name == "logit_scale").parameter;
        var allParameters = named.Select(np => np.parameter).ToList();

        var signature = Signature(o, config, train.Count, holdout?.Count ?? 0);
        var stateRoot = Path.Combine(o.OutputDirectory, StateFolder);
        var progress = new TrainingProgress();
        var startStep = StartStep(o, stateRoot, signature, model, optimizer, progress, totalSteps, log);

        log.WriteLine($"training CLIP ({parameterCount:N0} parameters, vocab {bpe.Size}) on {train.Count} Fashion-MNIST training images: " +
                      $"{o.Epochs} epochs × {stepsPerEpoch} steps of {o.BatchSize}, lr {o.LearningRate:G3}, seed {o.Seed}, threads {get_num_threads()}");

        double? holdoutAccuracy = null;
        var sinceStart = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        int[]? order = null;
        var orderEpoch = -1;
        var lastLoss = double.NaN;
        var step = startStep;
        var completed = true;
        for (; step < totalSteps; step++)
        {
            if (cancel.IsCancellationRequested || (o.StopAfterStep is int stop && step >= stop))
            {
                completed = false;
                break;
            }
            var epoch = step / stepsPerEpoch;
            var within = step % stepsPerEpoch;
            if (orderEpoch != epoch)
            {
                order = EpochOrder(train.Count, o.Seed, epoch);
                orderEpoch = epoch;
            }
            var batchIdx = new ArraySegment<int>(order!, within * o.BatchSize, o.BatchSize);
            var rng = new Random(StepSeed(o.Seed, step));
            var lr = LearningRateAt(step, totalSteps, warmup, o.LearningRate, o.MinLearningRateFraction);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;

            var loss = TrainStep(o, config, model, optimizer, train, captionIds, batchIdx, rng, allParameters, logitScale);
            if (!float.IsFinite(loss)) throw new InvalidOperationException($"the loss became {loss} at step {step}; try a lower learning rate");
            lastLoss = loss;
            progress.Add(loss);

            var done = step + 1;
            o.Progress?.Invoke(done, totalSteps);
            var elapsed = sinceStart.Elapsed;
            var endOfEpoch = done % stepsPerEpoch == 0;
            if (endOfEpoch || (elapsed - lastReport).TotalSeconds >= o.ProgressSeconds)
            {
                lastReport = elapsed;
                log.WriteLine(ProgressLine(o, epoch, done, totalSteps, done - startStep, elapsed, progress.RecentMean, logitScale, lr));
            }
            if (endOfEpoch)
            {
                var line = string.Create(CultureInfo.InvariantCulture, $"epoch {epoch + 1}/{o.Epochs} done: mean loss {progress.CloseEpoch():F4}, {Format(wall.Elapsed)} elapsed");
                if (holdout is not null)
                {
                    holdoutAccuracy = HoldoutAccuracy(model, tokenizer, holdout);
                    line += string.Create(CultureInfo.InvariantCulture, $", hold-out zero-shot accuracy {holdoutAccuracy:P2}");
                }
                log.WriteLine(line);
                if (done < totalSteps) SaveState(stateRoot, signature, done, model, optimizer, progress);
            }
            else if (o.CheckpointEverySteps > 0 && done % o.CheckpointEverySteps == 0)
            {
                SaveState(stateRoot, signature, done, model, optimizer, progress);
            }
        }

        if (!completed)
        {
            SaveState(stateRoot, signature, step, model, optimizer, progress);
            log.WriteLine($"stopped at step {step}/{totalSteps}; state saved in {stateRoot} (continue with --resume)");
            return new ClipTrainingResult(o.OutputDirectory, step, totalSteps, false, startStep, progress.EpochLosses, lastLoss, holdoutAccuracy, wall.Elapsed, parameterCount);
        }

        model.eval();
        // Bilinear: the filter the training images were upsampled with, so served images look like trained ones.
        WriteModel(o.OutputDirectory, model, bpe, new PreprocessorConfig(config.Vision.ImageSize, config.Vision.ImageSize, config.Vision.ImageSize,
            o.ImageMean, o.ImageStd, ImageResampling.Bilinear));
        if (Directory.Exists(stateRoot)) Directory.Delete(stateRoot, recursive: true);
        log.WriteLine($"wrote {o.OutputDirectory} after {totalSteps} steps in {Format(wall.Elapsed)}");
        return new ClipTrainingResult(o.OutputDirectory, totalSteps, totalSteps, true, startStep, progress.EpochLosses, lastLoss, holdoutAccuracy, wall.Elapsed, parameterCount);
    }

    /// <summary>Writes config.json, model.safetensors, vocab.json, merges.txt and preprocessor_config.json.</summary>
    public static void WriteModel(string directory, ClipModel model, BpeVocabulary vocabulary, PreprocessorConfig preprocessor)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), model.Config.ToJson());
        SafeTensorsFile.Write(Path.Combine(directory, "model.safetensors"), model.state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
        vocabulary.Write(directory);
        File.WriteAllText(Path.Combine(directory, "preprocessor_config.json"), preprocessor.ToJson());
    }

    /// <summary>Linear warm-up to the peak over <paramref name="warmup"/> steps, then a cosine to minFraction·peak.</summary>
    public static double LearningRateAt(int step, int totalSteps, int warmup, double peak, double minFraction = 0)
    {
        if (step < warmup) return peak * (step + 1) / warmup;
        var progress = totalSteps <= warmup ? 1.0 : (double)(step - warmup) / (totalSteps - warmup);
        var cosine = 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, progress)));
        return peak * (minFraction + (1 - minFraction) * cosine);
    }

    private static string ProgressLine(ClipTrainingOptions o, int epoch, int done, int totalSteps, int stepsHere, TimeSpan elapsed, double recentLoss,
        Parameter logitScale, double lr)
    {
        var perSecond = stepsHere * o.BatchSize / Math.Max(1e-9, elapsed.TotalSeconds);
        var eta = TimeSpan.FromSeconds((totalSteps - done) * o.BatchSize / Math.Max(1e-9, perSecond));
        return string.Create(CultureInfo.InvariantCulture,
            $"epoch {epoch + 1}/{o.Epochs}  step {done}/{totalSteps}  loss {recentLoss:F4}  scale {Math.Exp(logitScale.item<float>()):F1}  lr {lr:E2}  {perSecond:F0} img/s  eta {Format(eta)}");
    }

    /// <summary>Zero-shot accuracy on the hold-out split, in evaluation mode, back in training mode after.</summary>
    private static double HoldoutAccuracy(ClipModel model, ClipTokenizer tokenizer, LabelledImages holdout)
    {
        model.eval();
        var accuracy = ZeroShot.Evaluate(model, tokenizer, new GreyImageDataset(holdout), LabelVocabulary.DefaultTemplate, 1000).Accuracy;
        model.train();
        return accuracy;
    }

    /// <summary>AdamW with weight decay on the matrices only (biases, norms, embeddings' scale and the logit scale are not decayed).</summary>
    private static AdamW CreateOptimizer(List<(string name, Parameter parameter)> named, ClipTrainingOptions o)
    {
        var decay = named.Where(np => np.parameter.dim() >= 2).Select(np => np.parameter).ToList();
        var noDecay = named.Where(np => np.parameter.dim() < 2).Select(np => np.parameter).ToList();
        return optim.AdamW(
            [new AdamW.ParamGroup(decay, o.LearningRate, o.Beta1, o.Beta2, o.Eps, o.WeightDecay),
             new AdamW.ParamGroup(noDecay, o.LearningRate, o.Beta1, o.Beta2, o.Eps, 0)],
            o.LearningRate, o.Beta1, o.Beta2, o.Eps, o.WeightDecay);
    }

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
        var targets = arange(o.BatchSize, dtype: ScalarType.Int64);
        var l = (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.t(), targets)) / 2;
        optimizer.zero_grad();
        l.backward();
        if (o.GradientClip > 0) nn.utils.clip_grad_norm_(allParameters, o.GradientClip);
        optimizer.step();
        using (no_grad()) logitScale.clamp_(0, MaxLogitScale);
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

    /// <summary>A short duration such as "4m05s".</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F1}s";

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
