using System.Buffers.Binary;
using System.IO.Compression;

namespace TaptPlatform.Vision.Data;

/// <summary>
/// Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) from the idx files that Debian's
/// <c>dataset-fashion-mnist</c> package installs: 60 000 training and 10 000 test images, 28×28 grey.
/// </summary>
public static class FashionMnist
{
    public const string DefaultRoot = "/usr/share/datasets/fashion-mnist";
    public const string InstallHint = "install it with apt-get install dataset-fashion-mnist";

    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The root folder: the argument, $TAPT_FASHION_MNIST, or Debian's location.</summary>
    public static string ResolveRoot(string? root = null) =>
        root ?? (Environment.GetEnvironmentVariable("TAPT_FASHION_MNIST") is { Length: > 0 } env ? env : DefaultRoot);

    /// <summary>Loads "train" or "test" (t10k) from the idx.gz files under <paramref name="root"/>.</summary>
    public static LabelledImages Load(string split, string? root = null)
    {
        var prefix = split switch
        {
            "train" => "train",
            "test" or "t10k" => "t10k",
            _ => throw new ArgumentException($"unknown Fashion-MNIST split '{split}' (use train or test)", nameof(split)),
        };
        var dir = ResolveRoot(root);
        var imagesPath = Path.Combine(dir, $"{prefix}-images-idx3-ubyte.gz");
        var labelsPath = Path.Combine(dir, $"{prefix}-labels-idx1-ubyte.gz");
        foreach (var p in new[] { imagesPath, labelsPath })
            if (!File.Exists(p)) throw new DatasetException($"Fashion-MNIST file not found: {p} ({InstallHint})");
        var (pixels, count, height, width) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != count)
            throw new DatasetException($"{labelsPath} has {labels.Length} labels but {imagesPath} has {count} images");
        var data = new LabelledImages(ClassNames, pixels, labels, height, width);
        data.Validate();
        return data;
    }

    /// <summary>A deterministic subset of <paramref name="n"/> images (a seeded shuffle's first n, in index order).</summary>
    public static LabelledImages Sample(LabelledImages d, int n, int seed)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n));
        if (n >= d.Count) return d;
        var order = Enumerable.Range(0, d.Count).ToArray();
        new Random(seed).Shuffle(order);
        var chosen = order.Take(n).Order().ToArray();
        return d.Subset(chosen);
    }

    /// <summary>Reads an idx3 image file (magic 2051), gzip-compressed or plain.</summary>
    public static (byte[] Pixels, int Count, int Height, int Width) ReadImages(string path)
    {
        var bytes = ReadAll(path);
        var dims = Header(bytes, path, 2051, 3);
        var (count, h, w) = (dims[0], dims[1], dims[2]);
        var expected = 16L + (long)count * h * w;
        if (bytes.Length != expected)
            throw new DatasetException($"{path}: {count} images of {h}x{w} need {expected} bytes, the file has {bytes.Length}");
        return (bytes[16..], count, h, w);
    }

    /// <summary>Reads an idx1 label file (magic 2049), gzip-compressed or plain.</summary>
    public static int[] ReadLabels(string path)
    {
        var bytes = ReadAll(path);
        var count = Header(bytes, path, 2049, 1)[0];
        if (bytes.Length != 8L + count)
            throw new DatasetException($"{path}: {count} labels need {8L + count} bytes, the file has {bytes.Length}");
        var labels = new int[count];
        for (var i = 0; i < count; i++) labels[i] = bytes[8 + i];
        return labels;
    }

    private static int[] Header(byte[] bytes, string path, int magic, int rank)
    {
        if (bytes.Length < 4 + 4 * rank) throw new DatasetException($"{path}: too short for an idx header");
        var m = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (m != magic) throw new DatasetException($"{path}: magic number {m}, expected {magic} (not an idx{rank} unsigned-byte file)");
        var dims = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * i));
            if (dims[i] < 0 || (i > 0 && dims[i] == 0)) throw new DatasetException($"{path}: invalid dimension {dims[i]}");
        }
        return dims;
    }

    private static byte[] ReadAll(string path)
    {
        if (!File.Exists(path)) throw new DatasetException($"file not found: {path} ({InstallHint})");
        try
        {
            using var fs = File.OpenRead(path);
            var gz = fs.Length >= 2 && fs.ReadByte() == 0x1f && fs.ReadByte() == 0x8b;
            fs.Position = 0;
            using var ms = new MemoryStream();
            if (gz)
            {
                using var z = new GZipStream(fs, CompressionMode.Decompress);
                z.CopyTo(ms);
            }
            else fs.CopyTo(ms);
            return ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException($"{path}: corrupt gzip data ({e.Message})", e);
        }
    }
}
