using System.Globalization;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Apt;

/// <summary>Adversarial prompt pre-training settings (the paper's, scaled to the data at hand).</summary>
public sealed record AptOptions
{
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 32;
    /// <summary>Their config files use 0.0035 (the paper says 0.035).</summary>
    public double LearningRate { get; init; } = 0.0035;
    public double WarmupLearningRate { get; init; } = 1e-5;
    public int WarmupEpochs { get; init; } = 1;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    /// <summary>False trains the clean prompts P_clean (no adversarial half).</summary>
    public bool Adversarial { get; init; } = true;
    public double Epsilon { get; init; } = 1.0 / 255;
    public int AttackSteps { get; init; } = 2;
    public double AttackStepSize { get; init; } = 1.0 / 255;
    public int Seed { get; init; } = 1;
}

/// <summary>One finished epoch (1-based): its learning rate, mean loss, accuracy on the clean and the attacked half of its batches, and time.</summary>
public sealed record AptEpoch(int Epoch, double LearningRate, double Loss, double CleanAccuracy, double AdversarialAccuracy, double Seconds);

public sealed record AptProgress(int Epoch, int Epochs, int Step, int StepsPerEpoch, double LearningRate, double Loss, double CleanAccuracy, double AdversarialAccuracy, double ImagesPerSecond);

/// <summary>
/// APT: prompts trained with cross-entropy on batches whose second half is replaced by PGD
/// adversarial images (ε = 1/255, 2 steps of 1/255, random start) made against the current prompts;
/// the encoders stay frozen. SGD with momentum, one constant warm-up epoch, then cosine decay (as
/// Dassl's schedulers). A state file written after every epoch lets an interrupted run resume exactly.
/// </summary>
public sealed class AptTrainer(PromptedClip clip, AptOptions options)
{
    public void Train(PromptSet prompts, LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> indices, string? statePath, Action<AptProgress>? progress = null)
    {
        var momentum = NewMomentum(prompts);
        var startEpoch = 0;
        if (statePath is not null && File.Exists(statePath)) startEpoch = Restore(statePath, prompts.Parameters().ToList(), momentum);
        for (var epoch = startEpoch; epoch < options.Epochs; epoch++)
        {
            TrainEpoch(prompts, momentum, vocabulary, data, indices, epoch, progress);
            if (statePath is not null) Save(statePath, prompts.Parameters().ToList(), momentum, epoch + 1);
        }
    }

    /// <summary>The optimiser's momentum buffers for <paramref name="prompts"/>, zero (a fresh run).</summary>
    public static List<Tensor> NewMomentum(PromptSet prompts) => prompts.Parameters().Select(p => zeros_like(p).requires_grad_(false)).ToList();

    /// <summary>
    /// One epoch (0-based <paramref name="epoch"/>, which sets the learning rate and the shuffle) from the prompts and
    /// momentum as they stand: what <see cref="Train"/> runs per epoch, for callers that checkpoint elsewhere.
    /// </summary>
    public AptEpoch TrainEpoch(PromptSet prompts, IReadOnlyList<Tensor> momentum, LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> indices, int epoch,
        Action<AptProgress>? progress = null)
    {
        using var pass = BeginEpoch(prompts, momentum, vocabulary, data, indices, epoch);
        pass.TrainFor(TimeSpan.MaxValue, progress);
        return pass.Result;
    }

    /// <summary>The same epoch as <see cref="TrainEpoch"/>, to run in slices (<see cref="AptEpochPass.TrainFor"/>); the caller disposes it.</summary>
    public AptEpochPass BeginEpoch(PromptSet prompts, IReadOnlyList<Tensor> momentum, LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> indices, int epoch) =>
        new(clip, options, prompts, momentum, vocabulary, data, indices, epoch, LearningRateAt(epoch));

    /// <summary>Constant warm-up, then cosine annealing over all epochs (Dassl's ConstantWarmupScheduler + CosineAnnealingLR).</summary>
    public double LearningRateAt(int epoch) => epoch < options.WarmupEpochs
        ? options.WarmupLearningRate
        : 0.5 * options.LearningRate * (1 + Math.Cos(Math.PI * epoch / options.Epochs));

    private static void Save(string path, List<Parameter> parameters, List<Tensor> momentum, int epochsDone)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (var i = 0; i < parameters.Count; i++)
        {
            tensors[$"p{i:D3}"] = parameters[i];
            tensors[$"m{i:D3}"] = momentum[i];
        }
        SafeTensorsFile.Write(path, tensors, new Dictionary<string, string> { ["epochs_done"] = epochsDone.ToString(CultureInfo.InvariantCulture) });
    }

    private static int Restore(string path, List<Parameter> parameters, List<Tensor> momentum)
    {
        var file = SafeTensorsFile.Open(path);
        using var _ = no_grad();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var p = file.ReadFloat32($"p{i:D3}");
            using var m = file.ReadFloat32($"m{i:D3}");
            parameters[i].copy_(p);
            momentum[i].copy_(m);
        }
        return int.Parse(file.Metadata["epochs_done"], CultureInfo.InvariantCulture);
    }
}
