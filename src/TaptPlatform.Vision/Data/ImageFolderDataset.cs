using TaptPlatform.Vision.Imaging;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>One image of an <see cref="ImageFolderDataset"/>: its file and label index.</summary>
public sealed record ImageFolderItem(string Path, int Label);

/// <summary>
/// A labelled image folder: one sub-folder per class (the label is the folder name; classes are
/// ordered ordinally by name), images directly inside each sub-folder. Images are decoded lazily with
/// <see cref="ImagePreprocessor"/> (CLIP geometry, CHW floats in [0,1]).
/// </summary>
public sealed class ImageFolderDataset
{
    public static readonly IReadOnlyList<string> DefaultExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"];

    private ImageFolderDataset(string root, IReadOnlyList<string> classNames, IReadOnlyList<ImageFolderItem> items)
    {
        Root = root;
        ClassNames = classNames;
        Items = items;
    }

    public string Root { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public IReadOnlyList<ImageFolderItem> Items { get; }
    public int Count => Items.Count;
    public int[] Labels => Items.Select(i => i.Label).ToArray();

    /// <summary>Lists the classes and image files (by extension, case-insensitive); hidden entries are skipped.</summary>
    public static ImageFolderDataset Open(string root, IEnumerable<string>? extensions = null)
    {
        if (!Directory.Exists(root)) throw new DatasetException($"image folder not found: {root}");
        var exts = new HashSet<string>(extensions ?? DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        var classDirs = Directory.GetDirectories(root)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (classDirs.Count == 0) throw new DatasetException($"{root} has no class sub-folders (expected one folder per label, e.g. {root}/cat/1.png)");
        var names = new List<string>();
        var items = new List<ImageFolderItem>();
        foreach (var dir in classDirs)
        {
            var files = Directory.GetFiles(dir)
                .Where(f => !Path.GetFileName(f).StartsWith('.') && exts.Contains(Path.GetExtension(f)))
                .Order(StringComparer.Ordinal)
                .ToList();
            if (files.Count == 0) continue;
            var label = names.Count;
            names.Add(Path.GetFileName(dir));
            items.AddRange(files.Select(f => new ImageFolderItem(f, label)));
        }
        if (items.Count == 0) throw new DatasetException($"{root}: no images ({string.Join(", ", exts)}) in its sub-folders");
        return new ImageFolderDataset(Path.GetFullPath(root), names, items);
    }

    /// <summary>Decodes one image as CHW floats in [0,1].</summary>
    public float[] Load(int index, ImagePreprocessor preprocessor)
    {
        if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index));
        return preprocessor.LoadFile(Items[index].Path);
    }

    /// <summary>
    /// Decodes every image once through the hardened pipeline into an in-memory dataset (evaluation on a user's folder).
    /// A rejected image fails the whole set, naming the file.
    /// </summary>
    public InMemoryImageDataset Decode(ImagePreprocessorOptions options, ImageLimits? limits = null)
    {
        if (ClassNames.Count < 2) throw new DatasetException($"{Root} needs at least two label folders with images");
        var pre = new ImagePreprocessor(options, limits);
        var pixels = new float[Count][];
        for (var i = 0; i < Count; i++)
        {
            try
            {
                pixels[i] = Load(i, pre);
            }
            catch (ImageRejectedException e)
            {
                throw new DatasetException($"{Items[i].Path}: {e.Message}", e);
            }
        }
        return new InMemoryImageDataset(ClassNames, pixels, Labels, options.CropHeight);
    }

    /// <summary>Decodes the images at the indices into a [n, 3, H, W] tensor.</summary>
    public Tensor LoadBatch(IReadOnlyList<int> indices, ImagePreprocessor preprocessor) =>
        preprocessor.ToTensor(indices.Select(i => Load(i, preprocessor)).ToList());
}
