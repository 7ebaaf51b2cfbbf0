using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Apt;

/// <summary>
/// <see cref="AptRun.Validate"/> in slices: <see cref="RunFor"/> validates whole batches until the images are done or its
/// time is up. The attack's generator and the counts carry over, so any slicing gives the figures one call gives. Not
/// thread-safe: one thread at a time.
/// </summary>
public sealed class AptValidationPass : IDisposable
{
    private readonly PromptedClip _clip;
    private readonly PromptSet _prompts;
    private readonly LabelVocabulary _vocabulary;
    private readonly IImageDataset _data;
    private readonly int[][] _batches;
    private readonly double _epsilon;
    private readonly PgdAttack _attack;
    private readonly Generator _generator;
    private readonly int _images;
    private int _next;
    private long _clean, _robust;

    public AptValidationPass(PromptedClip clip, PromptSet prompts, LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> indices,
        double epsilon, int seed, int batchSize = 64)
    {
        (_clip, _prompts, _vocabulary, _data, _epsilon) = (clip, prompts, vocabulary, data, epsilon);
        _batches = [.. indices.Chunk(batchSize)];
        _images = indices.Count;
        _attack = new PgdAttack(epsilon, AptRun.ValidationAttackSteps, epsilon / 4, randomStart: true, AttackLosses.CrossEntropy, "PGD");
        _generator = new Generator((ulong)seed);
    }

    public bool Finished => _next >= _batches.Length;

    /// <summary>
    /// Validates batches until every image is done or <paramref name="budget"/> has passed (at least one batch); returns
    /// whether every image is done. <paramref name="stop"/> is asked before every batch and stops the pass with
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public bool RunFor(TimeSpan budget, Func<bool>? stop = null)
    {
        var slice = System.Diagnostics.Stopwatch.StartNew();
        while (!Finished)
        {
            if (stop?.Invoke() == true) throw new OperationCanceledException("validation stopped");
            ValidateBatch(_batches[_next++]);
            if (slice.Elapsed >= budget) break;
        }
        return Finished;
    }

    /// <summary>Clean and robust accuracy over all the images (NaN for none).</summary>
    public AptAccuracy Result => !Finished
        ? throw new InvalidOperationException($"{_batches.Length - _next} batch(es) of the validation to go")
        : _images == 0 ? new AptAccuracy(double.NaN, double.NaN, 0) : new AptAccuracy((double)_clean / _images, (double)_robust / _images, _images);

    private void ValidateBatch(int[] batch)
    {
        using var scope = NewDisposeScope();
        var x = _data.Images(batch, _clip.ImageSize).to(_clip.Device);
        var y = tensor(batch.Select(i => (long)_data.Label(i)).ToArray()).to(_clip.Device);
        using (no_grad()) _clean += _clip.Classify(x, _vocabulary, _prompts).argmax(-1).eq(y).sum().item<long>();
        var adv = _epsilon > 0 ? _attack.Perturb(img => _clip.Classify(img, _vocabulary, _prompts), x, y, _generator) : x;
        using (no_grad()) _robust += _clip.Classify(adv, _vocabulary, _prompts).argmax(-1).eq(y).sum().item<long>();
    }

    public void Dispose() => _generator.Dispose();
}
