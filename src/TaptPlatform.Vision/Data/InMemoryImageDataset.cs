namespace TaptPlatform.Vision.Data;

/// <summary>
/// Images already decoded to CHW floats in [0,1] at one size (e.g. through <see cref="Imaging.ImagePreprocessor"/>), with labels:
/// what <see cref="ImageFolderDataset.Decode"/> makes of a folder of the same images.
/// </summary>
public sealed class InMemoryImageDataset : PixelRowsDataset
{
    private readonly IReadOnlyList<float[]> _pixels;

    public InMemoryImageDataset(IReadOnlyList<string> classNames, IReadOnlyList<float[]> pixels, IReadOnlyList<int> labels, int size)
        : base(classNames, pixels.Count, labels, size)
    {
        foreach (var p in pixels)
            if (p.Length != 3 * size * size) throw new DatasetException($"an image has {p.Length} values, expected 3x{size}x{size}");
        _pixels = pixels;
    }

    protected override float[] Pixels(int index) => _pixels[index];
}
