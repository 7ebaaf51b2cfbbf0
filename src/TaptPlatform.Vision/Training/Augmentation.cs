using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Training;

/// <summary>
/// Light training augmentation on a whole batch at once: each image is augmented with probability
/// <see cref="Probability"/> (otherwise only resized): a random resized crop (area fraction in
/// [<see cref="MinScale"/>, 1], aspect ratio in [3/4, 4/3]) resampled bilinearly to the output size,
/// and a horizontal flip with probability <see cref="FlipProbability"/>. Parameters come from a
/// seeded <see cref="Random"/>, so a step's augmentation is reproducible.
/// </summary>
public sealed record Augmentation(double MinScale = 0.6, double FlipProbability = 0.5, double Probability = 1.0)
{
    public static Augmentation None { get; } = new(1.0, 0.0, 0.0);

    public bool IsIdentity => Probability <= 0.0 || (MinScale >= 1.0 && FlipProbability <= 0.0);

    /// <summary>Augments [B, C, H, W] pixels in [0,1] into [B, C, size, size].</summary>
    public Tensor Apply(Tensor images, int size, Random rng)
    {
        var b = (int)images.shape[0];
        using var scope = NewDisposeScope();
        if (IsIdentity)
        {
            if (images.shape[2] == size && images.shape[3] == size) return images.alias().MoveToOuterDisposeScope();
            return nn.functional.interpolate(images, [size, size], mode: InterpolationMode.Bilinear, align_corners: false).MoveToOuterDisposeScope();
        }
        var theta = new float[b * 6];
        for (var i = 0; i < b; i++)
        {
            if (Probability < 1.0 && rng.NextDouble() >= Probability)
            {
                theta[i * 6 + 0] = 1;
                theta[i * 6 + 4] = 1;
                continue;
            }
            var scale = MinScale + (1 - MinScale) * rng.NextDouble();
            var logRatio = Math.Log(3.0 / 4) + (Math.Log(4.0 / 3) - Math.Log(3.0 / 4)) * rng.NextDouble();
            var ratio = Math.Exp(logRatio);
            var w = Math.Min(1.0, Math.Sqrt(scale * ratio));   // fractions of the side
            var h = Math.Min(1.0, Math.Sqrt(scale / ratio));
            var cx = (1 - w) * (2 * rng.NextDouble() - 1);    // centre in [-1, 1] coordinates
            var cy = (1 - h) * (2 * rng.NextDouble() - 1);
            var flip = rng.NextDouble() < FlipProbability ? -1.0 : 1.0;
            theta[i * 6 + 0] = (float)(w * flip);
            theta[i * 6 + 2] = (float)cx;
            theta[i * 6 + 4] = (float)h;
            theta[i * 6 + 5] = (float)cy;
        }
        var t = tensor(theta, [b, 2, 3], dtype: images.dtype, device: images.device);
        var grid = nn.functional.affine_grid(t, [b, images.shape[1], size, size], align_corners: false);
        var output = nn.functional.grid_sample(images, grid, mode: GridSampleMode.Bilinear, padding_mode: GridSamplePaddingMode.Border, align_corners: false);
        return output.clamp_(Zero, One).MoveToOuterDisposeScope();
    }
}
