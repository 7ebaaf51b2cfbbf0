using System.Diagnostics;
using System.Globalization;
using TaptPlatform.Vision.Attacks;
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
        var o = options;
        var parameters = prompts.Parameters().ToList();
        if (momentum.Count != parameters.Count) throw new ArgumentException($"{momentum.Count} momentum buffers for {parameters.Count} prompt tensors", nameof(momentum));
        var size = clip.ImageSize;
        var stepsPerEpoch = (indices.Count + o.BatchSize - 1) / o.BatchSize;
        var attack = new PgdAttack(o.Epsilon, o.AttackSteps, o.AttackStepSize, randomStart: true, AttackLosses.CrossEntropy, "PGD");
        var lr = LearningRateAt(epoch);
        var order = indices.ToArray();
        new Random(o.Seed * 7919 + epoch).Shuffle(order);
        var generator = new Generator((ulong)(o.Seed * 104729 + epoch));
        double lossSum = 0, cleanRight = 0, cleanSeen = 0, advRight = 0, advSeen = 0;
        var clock = Stopwatch.StartNew();
        for (var s = 0; s < stepsPerEpoch; s++)
        {
            using var scope = NewDisposeScope();
            var batch = order.Skip(s * o.BatchSize).Take(o.BatchSize).ToArray();
            var x = data.Images(batch, size).to(clip.Device);
            var y = tensor(batch.Select(i => (long)data.Label(i)).ToArray()).to(clip.Device);
            var half = o.Adversarial ? batch.Length / 2 : 0;
            if (half > 0)
            {
                var cleanPart = x.narrow(0, 0, batch.Length - half);
                var attackPart = x.narrow(0, batch.Length - half, half);
                var attackLabels = y.narrow(0, batch.Length - half, half);
                var adv = attack.Perturb(img => clip.Classify(img, vocabulary, prompts), attackPart, attackLabels, generator);
                x = cat([cleanPart, adv], 0);
            }
            var logits = clip.Classify(x, vocabulary, prompts);
            var loss = nn.functional.cross_entropy(logits, y);
            foreach (var p in parameters) p.grad?.zero_();
            loss.backward();
            using (no_grad())
            {
                // torch.optim.SGD: buf = μ·buf + (g + wd·p); p −= lr·buf
                for (var i = 0; i < parameters.Count; i++)
                {
                    var p = parameters[i];
                    if (p.grad is null) continue;
                    var g = p.grad.add(p, alpha: o.WeightDecay);
                    momentum[i].mul_(o.Momentum).add_(g);
                    p.add_(momentum[i], alpha: -lr);
                }
            }
            var right = logits.argmax(-1).eq(y).to(ScalarType.Float32).cpu().data<float>().ToArray();
            var cleanCount = batch.Length - half;
            cleanRight += right.Take(cleanCount).Sum();
            cleanSeen += cleanCount;
            advRight += right.Skip(cleanCount).Sum();
            advSeen += half;
            lossSum += loss.item<float>() * batch.Length;
            progress?.Invoke(new AptProgress(epoch + 1, o.Epochs, s + 1, stepsPerEpoch, lr, lossSum / (cleanSeen + advSeen),
                cleanRight / Math.Max(1, cleanSeen), advSeen == 0 ? double.NaN : advRight / advSeen, (cleanSeen + advSeen) / clock.Elapsed.TotalSeconds));
        }
        return new AptEpoch(epoch + 1, lr, lossSum / Math.Max(1, cleanSeen + advSeen), cleanRight / Math.Max(1, cleanSeen),
            advSeen == 0 ? double.NaN : advRight / advSeen, clock.Elapsed.TotalSeconds);
    }

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
