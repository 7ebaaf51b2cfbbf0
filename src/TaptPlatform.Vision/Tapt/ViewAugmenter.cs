using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tapt;

/// <summary>
/// TAPT's views: the original image plus RandomResizedCrop (scale 0.08–1, aspect 3/4–4/3, as
/// torchvision) and random horizontal flips, resized back to the model's size. Crop parameters come
/// from a seeded System.Random, so a seed fixes the views. Differentiable with respect to the image
/// (the adaptive attack takes gradients through it).
/// </summary>
public sealed record ViewAugmenter(double MinScale = 0.08, double MaxScale = 1.0, double FlipProbability = 0.5)
{
    public readonly record struct Crop(int Top, int Left, int Height, int Width, bool Flip);

    /// <summary>torchvision's RandomResizedCrop.get_params (10 tries, then a centre crop with a clamped ratio).</summary>
    public Crop Sample(int height, int width, Random rng)
    {
        var area = (double)height * width;
        var logLo = Math.Log(3.0 / 4);
        var logHi = Math.Log(4.0 / 3);
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var target = area * (MinScale + rng.NextDouble() * (MaxScale - MinScale));
            var aspect = Math.Exp(logLo + rng.NextDouble() * (logHi - logLo));
            var w = (int)Math.Round(Math.Sqrt(target * aspect));
            var h = (int)Math.Round(Math.Sqrt(target / aspect));
            if (w > 0 && h > 0 && w <= width && h <= height)
            {
                var top = rng.Next(0, height - h + 1);
                var left = rng.Next(0, width - w + 1);
                return new Crop(top, left, h, w, rng.NextDouble() < FlipProbability);
            }
        }
        var ratio = (double)width / height;
        int cw, ch;
        if (ratio < 3.0 / 4) { cw = width; ch = (int)Math.Round(cw / (3.0 / 4)); }
        else if (ratio > 4.0 / 3) { ch = height; cw = (int)Math.Round(ch * (4.0 / 3)); }
        else { cw = width; ch = height; }
        return new Crop((height - ch) / 2, (width - cw) / 2, ch, cw, rng.NextDouble() < FlipProbability);
    }

    /// <summary>[count, C, H, W]: view 0 is the image itself, the rest are random crops.</summary>
    public Tensor Views(Tensor image, int count, Random rng)
    {
        if (image.dim() != 3) throw new ArgumentException("expected one image [C, H, W]");
        var h = (int)image.shape[1];
        var w = (int)image.shape[2];
        var views = new Tensor[count];
        views[0] = image.unsqueeze(0);
        for (var i = 1; i < count; i++) views[i] = Apply(image, Sample(h, w, rng), h, w);
        var result = cat(views, 0);
        foreach (var v in views) v.Dispose();
        return result;
    }

    /// <summary>The same crop of every image of a [B, C, H, W] batch, resized to outHeight×outWidth (differentiable).</summary>
    public static Tensor ApplyToBatch(Tensor images, Crop c, int outHeight, int outWidth)
    {
        using var crop = images.narrow(2, c.Top, c.Height).narrow(3, c.Left, c.Width);
        var resized = nn.functional.interpolate(crop, [outHeight, outWidth], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
        if (!c.Flip) return resized;
        using (resized) return resized.flip(3);
    }

    /// <summary>One crop of one [C, H, W] image, as [1, C, outHeight, outWidth].</summary>
    public static Tensor Apply(Tensor image, Crop c, int outHeight, int outWidth)
    {
        using var batch = image.unsqueeze(0);
        return ApplyToBatch(batch, c, outHeight, outWidth);
    }
}
