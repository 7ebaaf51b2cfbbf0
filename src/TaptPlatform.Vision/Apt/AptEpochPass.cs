using System.Diagnostics;
using TorchSharp;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Apt;

/// <summary>
/// One APT epoch that can run in slices: <see cref="TrainFor"/> trains whole batches until the epoch ends or its time is up,
/// so a shared compute thread can serve other work between slices. The order, the attack's generator and the running sums
/// carry over, so any slicing trains exactly what one uninterrupted call does. Not thread-safe: one thread at a time.
/// </summary>
public sealed class AptEpochPass : IDisposable
{
    private readonly PromptedClip _clip;
    private readonly AptOptions _options;
    private readonly PromptSet _prompts;
    private readonly List<Parameter> _parameters;
    private readonly IReadOnlyList<Tensor> _momentum;
    private readonly LabelVocabulary _vocabulary;
    private readonly IImageDataset _data;
    private readonly int[] _order;
    private readonly int _epoch;
    private readonly double _learningRate;
    private readonly Generator _generator;
    private readonly PgdAttack _attack;
    private readonly Stopwatch _running = new();
    private double _lossSum, _cleanRight, _cleanSeen, _advRight, _advSeen;

    internal AptEpochPass(PromptedClip clip, AptOptions options, PromptSet prompts, IReadOnlyList<Tensor> momentum, LabelVocabulary vocabulary,
        IImageDataset data, IReadOnlyList<int> indices, int epoch, double learningRate)
    {
        _parameters = prompts.Parameters().ToList();
        if (momentum.Count != _parameters.Count) throw new ArgumentException($"{momentum.Count} momentum buffers for {_parameters.Count} prompt tensors", nameof(momentum));
        (_clip, _options, _prompts, _momentum, _vocabulary, _data, _epoch, _learningRate) = (clip, options, prompts, momentum, vocabulary, data, epoch, learningRate);
        _order = indices.ToArray();
        new Random(options.Seed * 7919 + epoch).Shuffle(_order);
        _generator = new Generator((ulong)(options.Seed * 104729 + epoch));
        _attack = new PgdAttack(options.Epsilon, options.AttackSteps, options.AttackStepSize, randomStart: true, AttackLosses.CrossEntropy, "PGD");
        Steps = (_order.Length + options.BatchSize - 1) / options.BatchSize;
    }

    /// <summary>Batches in the epoch.</summary>
    public int Steps { get; }

    /// <summary>Batches trained so far.</summary>
    public int StepsDone { get; private set; }

    public bool Finished => StepsDone >= Steps;

    /// <summary>
    /// Trains batches until the epoch ends or <paramref name="budget"/> has passed (at least one batch); returns whether the
    /// epoch ended. <paramref name="progress"/> is told after every batch and may throw to stop (the batch it reports counts).
    /// </summary>
    public bool TrainFor(TimeSpan budget, Action<AptProgress>? progress = null)
    {
        var slice = Stopwatch.StartNew();
        _running.Start();
        try
        {
            while (!Finished)
            {
                TrainBatch(progress);
                if (slice.Elapsed >= budget) break;
            }
        }
        finally
        {
            _running.Stop();
        }
        return Finished;
    }

    /// <summary>The finished epoch's figures; its seconds are the time spent training, not waiting between slices.</summary>
    public AptEpoch Result => Finished
        ? new AptEpoch(_epoch + 1, _learningRate, _lossSum / Math.Max(1, _cleanSeen + _advSeen), _cleanRight / Math.Max(1, _cleanSeen),
            _advSeen == 0 ? double.NaN : _advRight / _advSeen, _running.Elapsed.TotalSeconds)
        : throw new InvalidOperationException($"the epoch has {Steps - StepsDone} batch(es) to go");

    private void TrainBatch(Action<AptProgress>? progress)
    {
        var o = _options;
        using var scope = NewDisposeScope();
        var batch = _order.Skip(StepsDone * o.BatchSize).Take(o.BatchSize).ToArray();
        var x = _data.Images(batch, _clip.ImageSize).to(_clip.Device);
        var y = tensor(batch.Select(i => (long)_data.Label(i)).ToArray()).to(_clip.Device);
        var half = o.Adversarial ? batch.Length / 2 : 0;
        if (half > 0)
        {
            var cleanPart = x.narrow(0, 0, batch.Length - half);
            var attackPart = x.narrow(0, batch.Length - half, half);
            var attackLabels = y.narrow(0, batch.Length - half, half);
            var adv = _attack.Perturb(img => _clip.Classify(img, _vocabulary, _prompts), attackPart, attackLabels, _generator);
            x = cat([cleanPart, adv], 0);
        }
        var logits = _clip.Classify(x, _vocabulary, _prompts);
        var loss = nn.functional.cross_entropy(logits, y);
        foreach (var p in _parameters) p.grad?.zero_();
        loss.backward();
        using (no_grad())
        {
            using var weightDecay = o.WeightDecay.ToScalar();
            using var momentum = o.Momentum.ToScalar();
            using var step = (-_learningRate).ToScalar();
            // torch.optim.SGD: buf = μ·buf + (g + wd·p); p −= lr·buf
            for (var i = 0; i < _parameters.Count; i++)
            {
                var p = _parameters[i];
                if (p.grad is null) continue;
                var g = p.grad.add(p, alpha: weightDecay);
                _momentum[i].mul_(momentum).add_(g, One);
                p.add_(_momentum[i], alpha: step);
            }
        }
        var right = logits.argmax(-1).eq(y).to(ScalarType.Float32).cpu().data<float>().ToArray();
        var cleanCount = batch.Length - half;
        _cleanRight += right.Take(cleanCount).Sum();
        _cleanSeen += cleanCount;
        _advRight += right.Skip(cleanCount).Sum();
        _advSeen += half;
        _lossSum += loss.item<float>() * batch.Length;
        StepsDone++;
        progress?.Invoke(new AptProgress(_epoch + 1, o.Epochs, StepsDone, Steps, _learningRate, _lossSum / (_cleanSeen + _advSeen),
            _cleanRight / Math.Max(1, _cleanSeen), _advSeen == 0 ? double.NaN : _advRight / _advSeen, (_cleanSeen + _advSeen) / _running.Elapsed.TotalSeconds));
    }

    public void Dispose() => _generator.Dispose();
}
