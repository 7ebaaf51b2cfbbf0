using TaptPlatform.Vision.Data;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class FashionMnistTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-idx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void WriteTiny(string prefix = "train", bool gzip = true)
    {
        // 3 images of 2x3: image i has pixel value 10*i + j at position j.
        var pixels = Enumerable.Range(0, 3).SelectMany(i => Enumerable.Range(0, 6).Select(j => (byte)(10 * i + j))).ToArray();
        SyntheticFashion.WriteIdx(Path.Combine(_dir, $"{prefix}-images-idx3-ubyte.gz"), 2051, [3, 2, 3], pixels, gzip);
        SyntheticFashion.WriteIdx(Path.Combine(_dir, $"{prefix}-labels-idx1-ubyte.gz"), 2049, [3], [7, 0, 9], gzip);
    }

    [Fact]
    public void Reads_a_tiny_gzip_idx_pair()
    {
        WriteTiny();
        var d = FashionMnist.Load("train", _dir);
        Assert.Equal(3, d.Count);
        Assert.Equal((2, 3), (d.Height, d.Width));
        Assert.Equal([7, 0, 9], d.Labels);
        Assert.Equal(15, d.Pixels[2 * 6 - 1]); // image 1, last pixel
        Assert.Equal("Sneaker", d.ClassNames[d.Labels[0]]);
        using var t = d.ToTensor([2, 0], 2);
        Assert.Equal([2L, 3, 2, 2], t.shape);
    }

    [Fact]
    public void Reads_uncompressed_idx_too()
    {
        WriteTiny("t10k", gzip: false);
        var d = FashionMnist.Load("test", _dir);
        Assert.Equal(3, d.Count);
    }

    [Fact]
    public void To_tensor_replicates_grey_and_resizes()
    {
        var square = new LabelledImages(FashionMnist.ClassNames, Enumerable.Range(0, 16).Select(i => (byte)(i * 17)).ToArray(), [1], 4, 4);
        using var exact = square.ToTensor([0], 4);
        Assert.Equal(17f / 255, exact[0, 2, 0, 1].item<float>(), 5);
        Assert.True(exact[0, 0].equal(exact[0, 1]).all().item<bool>() && exact[0, 0].equal(exact[0, 2]).all().item<bool>());
        using var up = square.ToTensor([0], 8);
        Assert.Equal([1L, 3, 8, 8], up.shape);
        Assert.InRange(up.min().item<float>(), 0f, 1f);
        Assert.InRange(up.max().item<float>(), 0f, 1f);
    }

    [Fact]
    public void Wrong_magic_and_truncated_files_are_refused()
    {
        WriteTiny();
        SyntheticFashion.WriteIdx(Path.Combine(_dir, "train-labels-idx1-ubyte.gz"), 2051, [3], [1, 2, 3]);
        var e = Assert.Throws<DatasetException>(() => FashionMnist.Load("train", _dir));
        Assert.Contains("magic number 2051, expected 2049", e.Message);

        SyntheticFashion.WriteIdx(Path.Combine(_dir, "train-labels-idx1-ubyte.gz"), 2049, [4], [1, 2, 3]);
        e = Assert.Throws<DatasetException>(() => FashionMnist.Load("train", _dir));
        Assert.Contains("4 labels need 12 bytes", e.Message);

        SyntheticFashion.WriteIdx(Path.Combine(_dir, "train-labels-idx1-ubyte.gz"), 2049, [3], [1, 2, 10]);
        e = Assert.Throws<DatasetException>(() => FashionMnist.Load("train", _dir));
        Assert.Contains("label 10", e.Message);
    }

    [Fact]
    public void Missing_files_say_how_to_install_the_dataset()
    {
        var e = Assert.Throws<DatasetException>(() => FashionMnist.Load("test", Path.Combine(_dir, "nowhere")));
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Throws<ArgumentException>(() => FashionMnist.Load("validation", _dir));
    }

    [Fact]
    public void Sample_is_deterministic_and_a_subset()
    {
        var labels = Enumerable.Range(0, 100).Select(i => i % 10).ToArray();
        var d = new LabelledImages(FashionMnist.ClassNames, Enumerable.Range(0, 100).Select(i => (byte)i).ToArray(), labels, 1, 1);
        var a = FashionMnist.Sample(d, 10, 3);
        var b = FashionMnist.Sample(d, 10, 3);
        var c = FashionMnist.Sample(d, 10, 4);
        Assert.Equal(10, a.Count);
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.NotEqual(a.Pixels, c.Pixels);
        Assert.All(Enumerable.Range(0, 10), i => Assert.Equal(a.Pixels[i] % 10, a.Labels[i]));
        Assert.Same(d, FashionMnist.Sample(d, 1000, 0));
    }

    [Fact]
    public void Installed_dataset_has_the_known_first_items()
    {
        var root = FashionMnist.ResolveRoot();
        if (!File.Exists(Path.Combine(root, "t10k-labels-idx1-ubyte.gz"))) return; // dataset-fashion-mnist not installed
        var test = FashionMnist.Load("test");
        Assert.Equal(10_000, test.Count);
        Assert.Equal((28, 28), (test.Height, test.Width));
        Assert.Equal([9, 2, 1, 1, 6, 1, 4, 6, 5, 7], test.Labels[..10]);
        Assert.All(Enumerable.Range(0, 10), c => Assert.Equal(1000, test.Labels.Count(l => l == c)));
        var train = FashionMnist.Load("train");
        Assert.Equal(60_000, train.Count);
        Assert.Equal([9, 0, 0, 3, 0, 2, 7, 2, 5, 5], train.Labels[..10]);
    }
}
