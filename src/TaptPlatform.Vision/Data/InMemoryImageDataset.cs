using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// Images already decoded to CHW floats in [0,1] at one size (e.g. through <see cref="Imaging.ImagePreprocessor"/>), with labels:
/// what <see cref="ImageFolderDataset.Decode"/> makes of a folder of the same images.
/// </summary>
public sealed class InMemoryImageDataset : IImageDataset
{
    private readonly IReadOnlyList<float[]> _pixels;
    private readonly int[] _labels;
    private readonly int _size;

    public InMemoryImageDataset(IReadOnlyList<string> classNames, IReadOnlyList<float[]> pixels, IReadOnlyList<int> labels, int size)
    {
        if (pixels.Count != labels.Count) throw new DatasetException($"{pixels.Count} images but {labels.Count} labels");
        foreach (var p in pixels)
            if (p.Length != 3 * size * size) throw new DatasetException($"an image has {p.Length} values, expected 3x{size}x{size}");
        foreach (var l in labels)
            if (l < 0 || l >= classNames.Count) throw new DatasetException($"label {l} is outside the {classNames.Count} classes");
        ClassNames = classNames;
        _pixels = pixels;
        _labels = [.. labels];
        _size = size;
    }

    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _labels.Length;
    public int Label(int index) => _labels[index];

    public Tensor Images(IReadOnlyList<int> indices, int size)
    {
        if (size != _size) throw new ArgumentException($"images were prepared at {_size}px, asked for {size}px");
        var plane = 3 * size * size;
        var buffer = new float[indices.Count * plane];
        for (var i = 0; i < indices.Count; i++) _pixels[indices[i]].CopyTo(buffer, i * plane);
        return tensor(buffer, [indices.Count, 3, size, size]);
    }
}
