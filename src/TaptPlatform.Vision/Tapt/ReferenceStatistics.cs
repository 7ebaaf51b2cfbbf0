using TorchSharp;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Tapt;

/// <summary>Per visual block, per token, per channel mean and variance of block inputs: [layers, tokens, width] each.</summary>
public sealed class ReferenceStatistics : IDisposable
{
    public ReferenceStatistics(Tensor mean, Tensor variance, long images, string description)
    {
        if (!mean.shape.SequenceEqual(variance.shape) || mean.dim() != 3)
            throw new ArgumentException("mean and variance must both be [layers, tokens, width]");
        Mean = mean;
        Variance = variance;
        Images = images;
        Description = description;
    }

    public Tensor Mean { get; }
    public Tensor Variance { get; }
    public long Images { get; }
    public string Description { get; }
    public int Layers => (int)Mean.shape[0];

    public void Dispose()
    {
        Mean.Dispose();
        Variance.Dispose();
    }
}

/// <summary>Streams images through the prompted image encoder and accumulates block-input statistics.</summary>
public static class StatisticsCalibrator
{
    /// <param name="batches">Batches of [B, 3, S, S] pixels in [0,1] (already augmented if wanted).</param>
    public static ReferenceStatistics Compute(PromptedClip clip, PromptSet prompts, IEnumerable<Tensor> batches, int layers, string description)
    {
        Tensor? sum = null, sumSq = null;
        long n = 0;
        foreach (var batch in batches)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var blocks = new List<Tensor>();
            clip.ImageFeatures(batch.to(clip.Device), prompts, blocks, layers);
            var x = stack(blocks).to(ScalarType.Float64);           // [L, B, T, D]
            var s = x.sum(1);
            var s2 = x.square().sum(1);
            if (sum is null) { sum = s.cpu(); sumSq = s2.cpu(); }
            else { sum.PlusInPlace(s.cpu()); sumSq!.PlusInPlace(s2.cpu()); }
            sum.DetachFromDisposeScope();
            sumSq!.DetachFromDisposeScope();
            n += batch.shape[0];
        }
        if (sum is null || n < 2) throw new ArgumentException("calibration needs at least two images");
        using (sum)
        using (sumSq)
        {
            using var count = n.ToScalar();
            var mean = sum.div(count);
            var variance = (sumSq!.div(count) - mean.square()).clamp_min(Zero);
            return new ReferenceStatistics(mean.to(ScalarType.Float32), variance.to(ScalarType.Float32), n, description);
        }
    }
}
