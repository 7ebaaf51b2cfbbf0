using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// Images kept as their encoded bytes and decoded for each batch read, so a dataset holds its files, not 3·S² floats
/// per image (600 KB at 224 px: 3 GB for 5,000 images, for as long as a training step runs). Decoding again each
/// epoch costs a few milliseconds per image, next to an adversarial training step's forward and backward passes.
/// </summary>
public sealed class EncodedImageDataset : IImageDataset
{
    private readonly IReadOnlyList<byte[]?> _encoded;
    private readonly int[] _labels;
    private readonly Func<int, byte[], float[]> _decode;
    private readonly int _size;

    /// <param name="classNames">The label vocabulary.</param>
    /// <param name="encoded">Each image's file; null for an image this dataset will not be asked for.</param>
    /// <param name="labels">Each image's class.</param>
    /// <param name="decode">Image index and bytes to CHW floats in [0,1] at <paramref name="size"/> (its errors are the caller's).</param>
    /// <param name="size">The side the decoder produces.</param>
    public EncodedImageDataset(IReadOnlyList<string> classNames, IReadOnlyList<byte[]?> encoded, IReadOnlyList<int> labels, Func<int, byte[], float[]> decode, int size)
    {
        if (encoded.Count != labels.Count) throw new DatasetException($"{encoded.Count} images but {labels.Count} labels");
        foreach (var l in labels)
            if (l < 0 || l >= classNames.Count) throw new DatasetException($"label {l} is outside the {classNames.Count} classes");
        ClassNames = classNames;
        _encoded = encoded;
        _labels = [.. labels];
        _decode = decode;
        _size = size;
    }

    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _labels.Length;
    public int Label(int index) => _labels[index];

    public Tensor Images(IReadOnlyList<int> indices, int size)
    {
        if (size != _size) throw new ArgumentException($"images are decoded at {_size}px, asked for {size}px");
        var plane = 3 * size * size;
        var buffer = new float[indices.Count * plane];
        for (var i = 0; i < indices.Count; i++)
        {
            var index = indices[i];
            var bytes = _encoded[index] ?? throw new InvalidOperationException($"image {index} was not loaded into this dataset");
            var pixels = _decode(index, bytes);
            if (pixels.Length != plane) throw new DatasetException($"image {index} decoded to {pixels.Length} values, expected 3x{size}x{size}");
            pixels.CopyTo(buffer, i * plane);
        }
        return tensor(buffer, [indices.Count, 3, size, size]);
    }
}
