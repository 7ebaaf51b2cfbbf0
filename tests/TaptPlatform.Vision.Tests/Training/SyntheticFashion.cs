using System.Buffers.Binary;
using System.IO.Compression;

namespace TaptPlatform.Vision.Tests.Training;

/// <summary>Writes small Fashion-MNIST-shaped idx.gz files: class c is a bright bar at a class-specific place, plus noise.</summary>
internal static class SyntheticFashion
{
    public static void WriteSplit(string dir, string prefix, int count, int seed, int size = 28)
    {
        var rng = new Random(seed);
        var pixels = new byte[count * size * size];
        var labels = new byte[count];
        for (var i = 0; i < count; i++)
        {
            var c = i % 10;
            labels[i] = (byte)c;
            var img = pixels.AsSpan(i * size * size, size * size);
            for (var j = 0; j < img.Length; j++) img[j] = (byte)rng.Next(0, 40);
            // Classes 0-4: a horizontal bar at row band c; 5-9: a vertical bar at column band c-5.
            var band = (c % 5) * (size / 5);
            for (var a = band; a < band + size / 5; a++)
                for (var b = 2; b < size - 2; b++)
                {
                    var (y, x) = c < 5 ? (a, b) : (b, a);
                    img[y * size + x] = (byte)rng.Next(200, 256);
                }
        }
        WriteIdx(Path.Combine(dir, $"{prefix}-images-idx3-ubyte.gz"), 2051, [count, size, size], pixels);
        WriteIdx(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte.gz"), 2049, [count], labels);
    }

    public static void WriteIdx(string path, int magic, int[] dims, byte[] data, bool gzip = true)
    {
        using var fs = File.Create(path);
        using Stream s = gzip ? new GZipStream(fs, CompressionLevel.Fastest) : fs;
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, magic);
        s.Write(word);
        foreach (var d in dims)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, d);
            s.Write(word);
        }
        s.Write(data);
    }

    /// <summary>A temp folder with train (n images) and t10k (n/4 images) splits.</summary>
    public static string CreateDataset(int trainCount = 512, int testCount = 128)
    {
        var dir = Directory.CreateTempSubdirectory("tapt-fmnist-").FullName;
        WriteSplit(dir, "train", trainCount, 1);
        WriteSplit(dir, "t10k", testCount, 2);
        return dir;
    }
}
