using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// A labelled image set whose images come one by one as CHW floats in [0,1] at one size: checks the labels, and stacks
/// the rows a batch asks for.
/// </summary>
public abstract class PixelRowsDataset : IImageDataset
{
    private readonly int[] _labels;

    protected PixelRowsDataset(IReadOnlyList<string> classNames, int images, IReadOnlyList<int> labels, int size)
    {
        if (images != labels.Count) throw new DatasetException($"{images} images but {labels.Count} labels");
        foreach (var l in labels)
            if (l < 0 || l >= classNames.Count) throw new DatasetException($"label {l} is outside the {classNames.Count} classes");
        ClassNames = classNames;
        _labels = [.. labels];
        Size = size;
    }

    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _labels.Length;
    public int Size { get; }
    public int Label(int index) => _labels[index];

    /// <summary>Image <paramref name="index"/> as 3·<see cref="Size"/>² floats.</summary>
    protected abstract float[] Pixels(int index);

    public Tensor Images(IReadOnlyList<int> indices, int size)
    {
        if (size != Size) throw new ArgumentException($"images are prepared at {Size}px, asked for {size}px");
        var plane = 3 * size * size;
        var buffer = new float[indices.Count * plane];
        for (var i = 0; i < indices.Count; i++)
        {
            var pixels = Pixels(indices[i]);
            if (pixels.Length != plane) throw new DatasetException($"image {indices[i]} has {pixels.Length} values, expected 3x{size}x{size}");
            pixels.CopyTo(buffer, i * plane);
        }
        return tensor(buffer, [indices.Count, 3, size, size]);
    }
}
