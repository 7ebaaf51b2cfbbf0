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
public static partial class ClipTrainer
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
    private static readonly Scalar MaxLogitScaleScalar = MaxLogitScale.ToScalar();

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

        var (train, holdout, stepsPerEpoch) = LoadData(o);
        var totalSteps = stepsPerEpoch * o.Epochs;
        var warmup = Math.Max(1, (int)Math.Round(o.WarmupFraction * totalSteps));
        var (bpe, config, tokenizer, captionIds) = LearnTokenizer(o);

        using var model = CreateModel(o, config);
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
            if (order is null || within == 0) order = EpochOrder(train.Count, o.Seed, epoch);
            var batchIdx = new ArraySegment<int>(order, within * o.BatchSize, o.BatchSize);
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
                holdoutAccuracy = EndEpoch(o, epoch, progress, wall.Elapsed, model, tokenizer, holdout, log) ?? holdoutAccuracy;
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

        WriteTrainedModel(o, model, bpe, stateRoot);
        log.WriteLine($"wrote {o.OutputDirectory} after {totalSteps} steps in {Format(wall.Elapsed)}");
        return new ClipTrainingResult(o.OutputDirectory, totalSteps, totalSteps, true, startStep, progress.EpochLosses, lastLoss, holdoutAccuracy, wall.Elapsed, parameterCount);
    }

    /// <summary>A model initialised from the seed as CLIP initialises one, normalising as the options say, in training mode.</summary>
    private static ClipModel CreateModel(ClipTrainingOptions o, ClipConfig config)
    {
        manual_seed(o.Seed);
        var model = new ClipModel(config);
        using (var generator = new Generator((ulong)(uint)o.Seed))
            ClipInitialiser.Initialise(model, generator: generator);
        model.SetNormalisation(o.ImageMean, o.ImageStd);
        model.train();
        return model;
    }

    /// <summary>The training split only (optionally a sample of it) and a hold-out carved from it; steps per epoch.</summary>
    private static (LabelledImages Train, LabelledImages? Holdout, int StepsPerEpoch) LoadData(ClipTrainingOptions o)
    {
        var all = FashionMnist.Load("train", o.DataRoot);
        if (o.TrainLimit > 0) all = FashionMnist.Sample(all, o.TrainLimit, o.Seed);
        var (train, holdout) = Split(all, o.Holdout, o.Seed);
        if (o.Captions.ClassCount != train.ClassNames.Count)
            throw new ArgumentException($"the captions cover {o.Captions.ClassCount} classes, the data has {train.ClassNames.Count}");
        var stepsPerEpoch = train.Count / o.BatchSize;
        if (stepsPerEpoch < 1) throw new ArgumentException($"{train.Count} training images are fewer than one batch of {o.BatchSize}");
        return (train, holdout, stepsPerEpoch);
    }

    /// <summary>A tokenizer learnt from the captions; the config takes its size and special ids; the captions as token ids.</summary>
    private static (BpeVocabulary Bpe, ClipConfig Config, ClipTokenizer Tokenizer, int[][][] CaptionIds) LearnTokenizer(ClipTrainingOptions o)
    {
        var bpe = BpeTrainer.Train(o.Captions.Corpus());
        var config = o.Config with
        {
            Text = o.Config.Text with { VocabSize = bpe.Size, BosTokenId = bpe.Vocab[ClipTokenizer.StartToken], EosTokenId = bpe.Vocab[ClipTokenizer.EndToken] },
        };
        config.Validate();
        var tokenizer = bpe.ToTokenizer(config.Text.MaxPositionEmbeddings);
        return (bpe, config, tokenizer, o.Captions.Captions.Select(c => c.Select(tokenizer.Encode).ToArray()).ToArray());
    }

    /// <summary>Logs the epoch's mean loss and, with a hold-out, its zero-shot accuracy (returned).</summary>
    private static double? EndEpoch(ClipTrainingOptions o, int epoch, TrainingProgress progress, TimeSpan elapsed, ClipModel model,
        ClipTokenizer tokenizer, LabelledImages? holdout, TextWriter log)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"epoch {epoch + 1}/{o.Epochs} done: mean loss {progress.CloseEpoch():F4}, {Format(elapsed)} elapsed");
        double? accuracy = null;
        if (holdout is not null)
        {
            accuracy = HoldoutAccuracy(model, tokenizer, holdout);
            line += string.Create(CultureInfo.InvariantCulture, $", hold-out zero-shot accuracy {accuracy:P2}");
        }
        log.WriteLine(line);
        return accuracy;
    }

    /// <summary>The finished model, in evaluation mode, written as a Hugging Face folder; the resumable state is no longer needed.</summary>
    private static void WriteTrainedModel(ClipTrainingOptions o, ClipModel model, BpeVocabulary bpe, string stateRoot)
    {
        model.eval();
        var size = model.Config.Vision.ImageSize;
        // Bilinear: the filter the training images were upsampled with, so served images look like trained ones.
        WriteModel(o.OutputDirectory, model, bpe, new PreprocessorConfig(size, size, size, o.ImageMean, o.ImageStd, ImageResampling.Bilinear));
        if (Directory.Exists(stateRoot)) Directory.Delete(stateRoot, recursive: true);
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

    /// <summary>A short duration such as "4m05s".</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F1}s";

}
