using TaptPlatform.Vision.Imaging;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// A user's labelled images: one sub-folder per label (the folder name is the label), images decoded
/// through the hardened pipeline (resize shorter side, centre crop). Decoded once, kept in memory.
/// </summary>
public sealed class ImageFolderImageDataset : IImageDataset
{
    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif" };
    private readonly float[][] _pixels;
    private readonly int[] _labels;
    private readonly int _size;

    private ImageFolderImageDataset(IReadOnlyList<string> classNames, float[][] pixels, int[] labels, IReadOnlyList<string> paths, int size)
    {
        ClassNames = classNames;
        _pixels = pixels;
        _labels = labels;
        Paths = paths;
        _size = size;
    }

    public IReadOnlyList<string> ClassNames { get; }
    public IReadOnlyList<string> Paths { get; }
    public int Count => _labels.Length;
    public int Label(int index) => _labels[index];

    public static ImageFolderImageDataset Load(string root, int imageSize, ImageLimits? limits = null)
    {
        if (!Directory.Exists(root)) throw new DatasetException($"dataset folder not found: {root}");
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>()
            .Where(n => !n.StartsWith('.')).Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2) throw new DatasetException($"{root} needs at least two sub-folders, one per label");
        var pre = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(imageSize), limits);
        var pixels = new List<float[]>();
        var labels = new List<int>();
        var paths = new List<string>();
        for (var c = 0; c < classes.Length; c++)
        {
            foreach (var file in Directory.GetFiles(Path.Combine(root, classes[c])).Order(StringComparer.Ordinal))
            {
                if (!Extensions.Contains(Path.GetExtension(file))) continue;
                try
                {
                    pixels.Add(pre.LoadFile(file));
                }
                catch (ImageRejectedException e)
                {
                    throw new DatasetException($"{file}: {e.Message}", e);
                }
                labels.Add(c);
                paths.Add(file);
            }
        }
        if (labels.Count == 0) throw new DatasetException($"{root} has no images (png, jpg, webp, bmp, gif) in its label folders");
        return new ImageFolderImageDataset(classes, [.. pixels], [.. labels], paths, imageSize);
    }

    public Tensor Images(IReadOnlyList<int> indices, int size)
    {
        if (size != _size) throw new ArgumentException($"images were prepared at {_size}px, asked for {size}px");
        var plane = 3 * size * size;
        var buffer = new float[indices.Count * plane];
        for (var i = 0; i < indices.Count; i++) _pixels[indices[i]].CopyTo(buffer, i * plane);
        return tensor(buffer, [indices.Count, 3, size, size]);
    }
}
