using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace TaptPlatform.Vision.Imaging;

/// <summary>Writes pipeline tensors back out as images (adversarial examples, artifacts).</summary>
public static class ImageEncoding
{
    private static readonly PngEncoder Encoder = new()
    {
        ColorType = PngColorType.Rgb,
        BitDepth = PngBitDepth.Bit8,
    };

    /// <summary>
    /// Encodes CHW floats in [0,1] as an 8-bit RGB PNG: values are clamped, NaN becomes 0, and each is rounded to
    /// the nearest k/255, so values already on that grid round-trip exactly through <see cref="ImagePreprocessor.Load"/>
    /// with shortest edge = crop = the image size.
    /// </summary>
    public static byte[] EncodePng(float[] chw, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(chw);
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), $"invalid size {height}x{width}");
        var plane = (long)height * width;
        if (chw.Length != 3 * plane)
            throw new ArgumentException($"expected 3x{height}x{width} = {3 * plane} values, got {chw.Length}", nameof(chw));

        var pixels = new Rgb24[plane];
        for (var i = 0; i < plane; i++)
            pixels[i] = new Rgb24(ToByte(chw[i]), ToByte(chw[plane + i]), ToByte(chw[2 * plane + i]));
        using var image = Image.LoadPixelData<Rgb24>(pixels, width, height);
        using var ms = new MemoryStream();
        image.Save(ms, Encoder);
        return ms.ToArray();
    }

    private static byte ToByte(float v)
    {
        if (float.IsNaN(v) || v <= 0f) return 0;
        if (v >= 1f) return 255;
        return (byte)Math.Round(v * 255.0, MidpointRounding.AwayFromZero);
    }
}
