namespace TaptPlatform.Vision.Data;

/// <summary>
/// Images kept as their encoded bytes and decoded for each batch read, so a dataset holds its files, not 3·S² floats
/// per image (600 KB at 224 px: 3 GB for 5,000 images, for as long as a training step runs). Decoding again each
/// epoch costs a few milliseconds per image, next to an adversarial training step's forward and backward passes.
/// </summary>
/// <param name="classNames">The label vocabulary.</param>
/// <param name="encoded">Each image's file; null for an image this dataset will not be asked for.</param>
/// <param name="labels">Each image's class.</param>
/// <param name="decode">Image index and bytes to CHW floats in [0,1] at <paramref name="size"/> (its errors are the caller's).</param>
/// <param name="size">The side the decoder produces.</param>
public sealed class EncodedImageDataset(IReadOnlyList<string> classNames, IReadOnlyList<byte[]?> encoded, IReadOnlyList<int> labels,
    Func<int, byte[], float[]> decode, int size) : PixelRowsDataset(classNames, encoded.Count, labels, size)
{
    protected override float[] Pixels(int index) =>
        decode(index, encoded[index] ?? throw new InvalidOperationException($"image {index} was not loaded into this dataset"));
}
