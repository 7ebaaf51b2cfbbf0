using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Tests.Imaging;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class EncodedImageDatasetTests
{
    private static readonly ImagePreprocessor Preprocessor = new(new ImagePreprocessorOptions(16, 16, 16));

    [Fact]
    public void A_batch_decodes_only_its_images_to_what_the_preprocessor_makes_of_them()
    {
        byte[]?[] files = [TestImages.Noise(40, 30, "png", seed: 1), null, TestImages.Gradient(20, 20, "jpeg"), TestImages.Noise(16, 16, "webp", seed: 2)];
        var decoded = new List<int>();
        var data = new EncodedImageDataset(["a", "b"], files, [0, 1, 1, 0], (i, b) => { decoded.Add(i); return Preprocessor.Load(b); }, 16);

        using var batch = data.Images([3, 0], 16);
        Assert.Equal([2L, 3, 16, 16], batch.shape);
        Assert.Equal([3, 0], decoded);
        var expected = Preprocessor.Load(files[3]).Concat(Preprocessor.Load(files[0])).ToArray();
        Assert.Equal(expected, batch.data<float>().ToArray());
        Assert.Equal([0, 1, 1, 0], Enumerable.Range(0, data.Count).Select(data.Label));
    }

    [Fact]
    public void An_image_not_loaded_a_wrong_size_and_a_decoder_error_are_errors_when_read()
    {
        byte[]?[] files = [TestImages.Noise(16, 16, "png"), null, [1, 2, 3]];
        var data = new EncodedImageDataset(["a"], files, [0, 0, 0], (i, b) =>
        {
            try { return Preprocessor.Load(b); }
            catch (ImageRejectedException e) { throw new InvalidDataException($"image {i}: {e.Message}"); }
        }, 16);
        Assert.Contains("image 1 was not loaded", Assert.Throws<InvalidOperationException>(() => data.Images([0, 1], 16)).Message);
        Assert.StartsWith("image 2:", Assert.Throws<InvalidDataException>(() => data.Images([2], 16)).Message);
        Assert.Throws<ArgumentException>(() => data.Images([0], 32));
        Assert.Throws<DatasetException>(() => new EncodedImageDataset(["a"], files, [0, 3, 0], (_, b) => Preprocessor.Load(b), 16));
        var wrongSize = new EncodedImageDataset(["a"], files, [0, 0, 0], (_, _) => new float[7], 16);
        Assert.Throws<DatasetException>(() => wrongSize.Images([0], 16));
    }
}
