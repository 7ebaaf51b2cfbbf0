using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// Grayscale images with integer labels, held as bytes (N·H·W, row-major, 0 = black, 255 = white).
/// </summary>
public sealed record LabelledImages(IReadOnlyList<string> ClassNames, byte[] Pixels, int[] Labels, int Height, int Width)
{
    public int Count => Labels.Length;

    /// <summary>Checks that pixels, labels and class names agree.</summary>
    public void Validate()
    {
        if (Height <= 0 || Width <= 0) throw new DatasetException($"image size {Height}x{Width} is not positive");
        if ((long)Labels.Length * Height * Width != Pixels.LongLength)
            throw new DatasetException($"{Labels.Length} labels need {(long)Labels.Length * Height * Width} pixels, got {Pixels.LongLength}");
        foreach (var l in Labels)
            if (l < 0 || l >= ClassNames.Count) throw new DatasetException($"label {l} is outside the {ClassNames.Count} classes");
    }

    /// <summary>Image <paramref name="index"/> as an 8-bit RGB PNG at its stored size (grey replicated to RGB).</summary>
    public byte[] EncodePng(int index)
    {
        var plane = Height * Width;
        var chw = new float[3 * plane];
        for (var i = 0; i < plane; i++)
            chw[i] = chw[plane + i] = chw[2 * plane + i] = Pixels[index * plane + i] / 255f;
        return Imaging.ImageEncoding.EncodePng(chw, Height, Width);
    }

    /// <summary>
    /// [n, 3, size, size] float32 pixels in [0,1] for the given indices: grey replicated to RGB,
    /// resized bilinearly (torch, align_corners = false, antialiased when shrinking) if size differs.
    /// </summary>
    public Tensor ToTensor(IReadOnlyList<int> indices, int size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        using var scope = NewDisposeScope();
        var grey = GreyTensor(indices);
        if (size != Height || size != Width)
        {
            grey = nn.functional.interpolate(grey, [size, size], mode: InterpolationMode.Bilinear, align_corners: false,
                antialias: size < Height || size < Width).clamp_(Zero, One);
        }
        return grey.expand(-1, 3, -1, -1).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>[n, 1, H, W] float32 pixels in [0,1] at the stored size.</summary>
    public Tensor GreyTensor(IReadOnlyList<int> indices)
    {
        var plane = Height * Width;
        var buffer = new float[indices.Count * plane];
        for (var i = 0; i < indices.Count; i++)
        {
            var idx = indices[i];
            if (idx < 0 || idx >= Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {idx} is outside [0, {Count})");
            var src = Pixels.AsSpan(idx * plane, plane);
            var dst = buffer.AsSpan(i * plane, plane);
            for (var j = 0; j < plane; j++) dst[j] = src[j] / 255f;
        }
        return tensor(buffer, [indices.Count, 1, Height, Width]);
    }

    /// <summary>All images as a tensor (see <see cref="ToTensor(IReadOnlyList{int}, int)"/>).</summary>
    public Tensor ToTensor(int size) => ToTensor(Enumerable.Range(0, Count).ToArray(), size);

    /// <summary>The images at the given indices, in that order.</summary>
    public LabelledImages Subset(IReadOnlyList<int> indices)
    {
        var plane = Height * Width;
        var pixels = new byte[indices.Count * plane];
        var labels = new int[indices.Count];
        for (var i = 0; i < indices.Count; i++)
        {
            Pixels.AsSpan(indices[i] * plane, plane).CopyTo(pixels.AsSpan(i * plane));
            labels[i] = Labels[indices[i]];
        }
        return new LabelledImages(ClassNames, pixels, labels, Height, Width);
    }
}
