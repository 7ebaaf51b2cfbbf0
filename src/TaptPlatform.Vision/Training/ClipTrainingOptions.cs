using TaptPlatform.Vision.Clip;

namespace TaptPlatform.Vision.Training;

/// <summary>Settings of a contrastive CLIP training run on Fashion-MNIST's training split.</summary>
public sealed record ClipTrainingOptions
{
    /// <summary>Where the finished Hugging Face CLIP directory is written (and <c>.train-state/</c> while training).</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>The architecture; <c>vocab_size</c> and the special token ids are set from the trained tokenizer.</summary>
    public ClipConfig Config { get; init; } = ClipTrainer.DefaultConfig();

    public int Epochs { get; init; } = ClipTrainer.DefaultEpochs;
    public int BatchSize { get; init; } = ClipTrainer.DefaultBatchSize;

    /// <summary>Peak AdamW learning rate, reached after the warm-up and then decayed on a cosine to <see cref="MinLearningRateFraction"/>·peak.</summary>
    public double LearningRate { get; init; } = ClipTrainer.DefaultLearningRate;

    /// <summary>Decoupled weight decay, applied to matrices and embeddings only (not to biases, LayerNorms, the class embedding or logit_scale).</summary>
    public double WeightDecay { get; init; } = 0.1;

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.98;
    public double Eps { get; init; } = 1e-6;

    /// <summary>Warm-up length as a fraction of all steps.</summary>
    public double WarmupFraction { get; init; } = 0.05;

    public double MinLearningRateFraction { get; init; } = 0.0;

    /// <summary>Global gradient-norm clip (0 = off).</summary>
    public double GradientClip { get; init; } = 1.0;

    public Augmentation Augmentation { get; init; } = ClipTrainer.DefaultAugmentation;

    public int Seed { get; init; } = ClipTrainer.DefaultSeed;

    /// <summary>torch intra-op threads (0 = leave as is).</summary>
    public int Threads { get; init; }

    /// <summary>Continue from <c>&lt;out&gt;/.train-state/</c> if it exists.</summary>
    public bool Resume { get; init; }

    /// <summary>Use only this many training images (a deterministic sample; 0 = all 60 000).</summary>
    public int TrainLimit { get; init; }

    /// <summary>Hold this many training images out of training and report zero-shot accuracy on them after each epoch (0 = none).</summary>
    public int Holdout { get; init; }

    /// <summary>Save the training state every this many steps as well as after every epoch (0 = epochs only).</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>Stop (saving the state) once this global step is reached, as an interruption would (tests, time-boxed runs).</summary>
    public int? StopAfterStep { get; init; }

    /// <summary>Seconds between progress lines.</summary>
    public double ProgressSeconds { get; init; } = 10;

    /// <summary>Fashion-MNIST folder (null: $TAPT_FASHION_MNIST or Debian's location).</summary>
    public string? DataRoot { get; init; }

    public CaptionSet Captions { get; init; } = CaptionSet.Fashion;

    /// <summary>The mean/std written to preprocessor_config.json and used in training (default: Fashion-MNIST's pixel statistics, grey in all 3 channels).</summary>
    public float[] ImageMean { get; init; } = ClipTrainer.FashionMnistMean;
    public float[] ImageStd { get; init; } = ClipTrainer.FashionMnistStd;

    /// <summary>Progress and summary lines (null: none).</summary>
    public TextWriter? Log { get; init; }

    /// <summary>Called after every step with (steps done, total steps), for a progress display (null: none).</summary>
    public Action<int, int>? Progress { get; init; }

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(OutputDirectory)) throw new ArgumentException("an output directory is required");
        if (Epochs < 1) throw new ArgumentException("epochs must be at least 1");
        if (BatchSize < 2) throw new ArgumentException("the batch needs at least 2 images for a contrastive loss");
        if (!(LearningRate > 0)) throw new ArgumentException("the learning rate must be positive");
        if (WeightDecay < 0 || WarmupFraction < 0 || WarmupFraction >= 1 || MinLearningRateFraction < 0 || MinLearningRateFraction > 1)
            throw new ArgumentException("weight decay, warm-up fraction and minimum learning-rate fraction are out of range");
        if (Threads < 0 || TrainLimit < 0 || Holdout < 0 || CheckpointEverySteps < 0) throw new ArgumentException("counts must not be negative");
        if (ImageMean.Length != 3 || ImageStd.Length != 3 || ImageStd.Any(s => s <= 0)) throw new ArgumentException("image mean/std need 3 values, std positive");
        Config.Validate();
    }
}

/// <summary>What a run did.</summary>
public sealed record ClipTrainingResult(
    string OutputDirectory,
    int StepsDone,
    int TotalSteps,
    bool Completed,
    int StartStep,
    IReadOnlyList<double> EpochLosses,
    double LastLoss,
    double? HoldoutAccuracy,
    TimeSpan Elapsed,
    long ParameterCount);
