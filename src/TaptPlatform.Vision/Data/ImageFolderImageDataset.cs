using TaptPlatform.Vision.Imaging;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// A user's labelled images: one sub-folder per label (the folder name is the label), images decoded
/// through the hardened pipeline (resize shorter side, centre crop). Decoded once, kept in memory.
/// </summary>
public sealed class ImageFolderImageDataset : IImageDataset
{
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
        var folder = ImageFolderDataset.Open(root);
        if (folder.ClassNames.Count < 2) throw new DatasetException($"{root} needs at least two label folders with images");
        var pre = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(imageSize), limits);
        var pixels = new float[folder.Count][];
        for (var i = 0; i < folder.Count; i++)
        {
            try
            {
                pixels[i] = folder.Load(i, pre);
            }
            catch (ImageRejectedException e)
            {
                throw new DatasetException($"{folder.Items[i].Path}: {e.Message}", e);
            }
        }
        return new ImageFolderImageDataset(folder.ClassNames, pixels, folder.Labels, folder.Items.Select(x => x.Path).ToArray(), imageSize);
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
