using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class ImageFolderDatasetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-folder-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void Png(string label, string name, byte grey)
    {
        Directory.CreateDirectory(Path.Combine(_dir, label));
        using var img = new Image<Rgb24>(8, 8, new Rgb24(grey, grey, grey));
        img.SaveAsPng(Path.Combine(_dir, label, name));
    }

    [Fact]
    public void Labels_are_folder_names_and_images_decode()
    {
        Png("sneaker", "b.png", 200);
        Png("sneaker", "a.png", 100);
        Png("bag", "x.png", 0);
        File.WriteAllText(Path.Combine(_dir, "bag", "notes.txt"), "not an image");
        Directory.CreateDirectory(Path.Combine(_dir, "empty"));

        var d = ImageFolderDataset.Open(_dir);
        Assert.Equal(["bag", "sneaker"], d.ClassNames);
        Assert.Equal(3, d.Count);
        Assert.Equal([0, 1, 1], d.Labels);
        Assert.EndsWith("a.png", d.Items[1].Path);
        var pre = new ImagePreprocessor(new ImagePreprocessorOptions(4, 4, 4));
        var pixels = d.Load(1, pre);
        Assert.Equal(3 * 4 * 4, pixels.Length);
        Assert.All(pixels, p => Assert.Equal(100f / 255, p, 3));
        using var batch = d.LoadBatch([0, 2], pre);
        Assert.Equal([2L, 3, 4, 4], batch.shape);
    }

    [Fact]
    public void Missing_or_empty_folders_are_refused()
    {
        Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(Path.Combine(_dir, "nope")));
        Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(_dir));
        Directory.CreateDirectory(Path.Combine(_dir, "cat"));
        Assert.Contains("no images", Assert.Throws<DatasetException>(() => ImageFolderDataset.Open(_dir)).Message);
    }
}
