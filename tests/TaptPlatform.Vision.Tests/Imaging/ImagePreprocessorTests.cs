using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TorchSharp;

namespace TaptPlatform.Vision.Tests.Imaging;

public class ImagePreprocessorTests
{
    private static readonly ImagePreprocessor Small = new(new ImagePreprocessorOptions(32, 32, 32));

    private static float At(float[] chw, int c, int y, int x, int h, int w) => chw[(c * h + y) * w + x];

    private static void AssertColour(float[] chw, int h, int w, int y, int x, Rgb24 expected, float tolerance = 1e-6f)
    {
        Assert.InRange(At(chw, 0, y, x, h, w), expected.R / 255f - tolerance, expected.R / 255f + tolerance);
        Assert.InRange(At(chw, 1, y, x, h, w), expected.G / 255f - tolerance, expected.G / 255f + tolerance);
        Assert.InRange(At(chw, 2, y, x, h, w), expected.B / 255f - tolerance, expected.B / 255f + tolerance);
    }

    [Theory]
    [InlineData("png", "PNG")]
    [InlineData("jpeg", "JPEG")]
    [InlineData("webp", "WEBP")]
    [InlineData("webp-lossy", "WEBP")]
    [InlineData("bmp", "BMP")]
    [InlineData("gif", "GIF")]
    public void Every_supported_format_decodes_to_crop_sized_chw_in_unit_range(string format, string expectedName)
    {
        var bytes = TestImages.Noise(64, 48, format);

        var info = ImageProbe.Identify(bytes, ImageLimits.Default);
        var chw = Small.Load(bytes);

        Assert.Equal(new ImageInfo(expectedName, 64, 48), info);
        Assert.Equal(3 * 32 * 32, chw.Length);
        Assert.All(chw, v => Assert.InRange(v, 0f, 1f));
    }

    [Fact]
    public void Clip_sized_output_is_3x224x224()
    {
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(224));
        var chw = p.Load(TestImages.Noise(320, 240, "jpeg"));
        Assert.Equal(3 * 224 * 224, chw.Length);
        Assert.Equal(3 * 224 * 224, p.OutputLength);
    }

    [Theory]
    [InlineData("png", 0f)]
    [InlineData("webp", 0f)]
    [InlineData("bmp", 0f)]
    [InlineData("gif", 0f)]
    [InlineData("jpeg", 3 / 255f)]
    public void A_solid_colour_image_gives_that_colour(string format, float tolerance)
    {
        var colour = new Rgb24(200, 100, 50);
        var chw = Small.Load(TestImages.Solid(40, 40, colour, format));
        for (var y = 0; y < 32; y += 7)
            for (var x = 0; x < 32; x += 5)
                AssertColour(chw, 32, 32, y, x, colour, tolerance + 1e-6f);
    }

    [Fact]
    public void Values_are_pixel_over_255_exactly_as_hf_rescale()
    {
        var chw = Small.Load(TestImages.Solid(32, 32, new Rgb24(1, 128, 255), "png"));
        Assert.Equal((float)(1 * (1.0 / 255)), chw[0]);
        Assert.Equal((float)(128 * (1.0 / 255)), chw[32 * 32]);
        Assert.Equal(1f, chw[2 * 32 * 32]);
    }

    /// <summary>Green | red | blue | green columns; 300x100 -> 150x50 -> centre 50x50 keeps only red|blue.</summary>
    private static Image<Rgb24> Banded(int width, int height, bool vertical)
    {
        var image = new Image<Rgb24>(width, height);
        var length = vertical ? height : width;
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
            {
                var t = vertical ? y : x;
                image[x, y] = t < length / 3 || t >= 2 * length / 3 ? new Rgb24(0, 255, 0)
                    : t < length / 2 ? new Rgb24(255, 0, 0) : new Rgb24(0, 0, 255);
            }
        return image;
    }

    [Fact]
    public void A_wide_image_is_resized_on_its_shorter_side_and_centre_cropped_symmetrically()
    {
        using var image = Banded(300, 100, vertical: false);
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(50, 50, 50));

        var chw = p.Load(TestImages.Encode(image, "png"));

        Assert.Equal(3 * 50 * 50, chw.Length);
        AssertColour(chw, 50, 50, 25, 10, new Rgb24(255, 0, 0));
        AssertColour(chw, 50, 50, 25, 40, new Rgb24(0, 0, 255));
        for (var y = 0; y < 50; y++)
            for (var x = 0; x < 50; x++)
            {
                // Mirror symmetry: red on the left is blue on the right.
                Assert.Equal(At(chw, 0, y, x, 50, 50), At(chw, 2, y, 49 - x, 50, 50), 2 / 255f);
                // Squashing instead of cropping would bring the green bands in.
                if (x is >= 3 and <= 46) Assert.Equal(0f, At(chw, 1, y, x, 50, 50), 1 / 255f);
            }
    }

    [Fact]
    public void A_tall_image_is_resized_on_its_shorter_side_and_centre_cropped()
    {
        using var image = Banded(100, 300, vertical: true);
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(50, 50, 50));

        var chw = p.FromRgb(image);

        AssertColour(chw, 50, 50, 10, 25, new Rgb24(255, 0, 0));
        AssertColour(chw, 50, 50, 40, 25, new Rgb24(0, 0, 255));
        for (var y = 3; y <= 46; y++) Assert.Equal(0f, At(chw, 1, y, 25, 50, 50), 1 / 255f);
    }

    [Theory]
    [InlineData(640, 480, 224, 298, 224)]
    [InlineData(480, 640, 224, 224, 298)]
    [InlineData(100, 333, 224, 224, 745)] // int(224 * 333 / 100) = int(745.92)
    [InlineData(224, 500, 224, 224, 500)] // shorter side already right: unchanged
    [InlineData(1000, 1000, 224, 224, 224)]
    [InlineData(28, 28, 224, 224, 224)]
    public void Resized_size_follows_the_hf_shortest_edge_rule(int w, int h, int edge, int expectedW, int expectedH)
    {
        Assert.Equal((expectedW, expectedH), ImagePreprocessor.ResizedSize(w, h, edge));
    }

    [Fact]
    public void A_crop_larger_than_the_resized_image_is_zero_padded_like_hf()
    {
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(16, 21, 21));
        var chw = p.Load(TestImages.Solid(16, 16, new Rgb24(255, 255, 255), "png"));

        // HF pads (21 - 16) at ceil(5 / 2) = 3 before and 2 after.
        for (var y = 0; y < 21; y++)
            for (var x = 0; x < 21; x++)
            {
                var inside = y is >= 3 and < 19 && x is >= 3 and < 19;
                Assert.Equal(inside ? 1f : 0f, At(chw, 0, y, x, 21, 21));
            }
    }

    [Fact]
    public void An_animated_gif_uses_its_first_frame()
    {
        using var image = new Image<Rgb24>(16, 16, new Rgb24(255, 0, 0));
        using var blue = new Image<Rgb24>(16, 16, new Rgb24(0, 0, 255));
        image.Frames.AddFrame(blue.Frames.RootFrame);
        var gif = TestImages.Encode(image, "gif");
        using (var all = Image.Load<Rgb24>(gif)) Assert.Equal(2, all.Frames.Count);

        var chw = Small.Load(gif);

        AssertColour(chw, 32, 32, 16, 16, new Rgb24(255, 0, 0));
        AssertColour(chw, 32, 32, 0, 0, new Rgb24(255, 0, 0));
    }

    [Fact]
    public void Alpha_is_dropped_not_composited_on_white()
    {
        using var image = new Image<Rgba32>(8, 8, new Rgba32(10, 200, 30, 0));
        var chw = Small.Load(TestImages.Encode(image, "png"));
        AssertColour(chw, 32, 32, 5, 5, new Rgb24(10, 200, 30));
    }

    [Fact]
    public void Grayscale_pixels_are_replicated_into_all_three_channels()
    {
        var pixels = new byte[28 * 28];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 7 % 256);
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(224));

        var chw = p.FromGray(pixels, 28, 28);

        Assert.Equal(3 * 224 * 224, chw.Length);
        var plane = 224 * 224;
        for (var i = 0; i < plane; i++)
        {
            Assert.Equal(chw[i], chw[plane + i]);
            Assert.Equal(chw[i], chw[2 * plane + i]);
        }
        Assert.Contains(chw, v => v > 0.5f);
        Assert.Contains(chw, v => v < 0.5f);
    }

    [Fact]
    public void Grayscale_at_the_target_size_is_passed_through_unchanged()
    {
        var pixels = new byte[32 * 32];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = (byte)i;
        var chw = Small.FromGray(pixels, 32, 32);
        for (var i = 0; i < pixels.Length; i++) Assert.Equal(pixels[i] / 255f, chw[i], 1e-6f);
    }

    [Fact]
    public void Grayscale_with_the_wrong_number_of_bytes_is_refused()
    {
        Assert.Throws<ArgumentException>(() => Small.FromGray(new byte[10], 28, 28));
        var e = Assert.Throws<ImageRejectedException>(() => Small.FromGray(ReadOnlySpan<byte>.Empty, 0, 0));
        Assert.Equal(ImageRejectionReason.InvalidDimensions, e.Reason);
    }

    [Fact]
    public void FromRgb_does_not_modify_the_callers_image()
    {
        using var image = TestImages.HalfRedHalfBlue(64, 40);
        var chw = Small.FromRgb(image);
        Assert.Equal(3 * 32 * 32, chw.Length);
        Assert.Equal(64, image.Width);
        Assert.Equal(40, image.Height);
    }

    [Fact]
    public void ToTensor_stacks_images_into_an_nchw_float32_cpu_tensor()
    {
        var a = Small.Load(TestImages.Noise(40, 40, "png", seed: 1));
        var b = Small.Load(TestImages.Noise(40, 40, "png", seed: 2));

        using var t = Small.ToTensor([a, b]);

        Assert.Equal(new long[] { 2, 3, 32, 32 }, t.shape);
        Assert.Equal(torch.ScalarType.Float32, t.dtype);
        Assert.Equal(DeviceType.CPU, t.device_type);
        Assert.Equal(a[5], t[0, 0, 0, 5].item<float>());
        Assert.Equal(b[2 * 32 * 32 + 31 * 32 + 31], t[1, 2, 31, 31].item<float>());
    }

    [Fact]
    public void ToTensor_refuses_an_image_of_the_wrong_length()
    {
        Assert.Throws<ArgumentException>(() => Small.ToTensor([new float[3 * 32 * 32], new float[5]]));
    }

    [Fact]
    public void EncodePng_round_trips_exactly_through_Load()
    {
        var rnd = new Random(3);
        var chw = new float[3 * 8 * 6];
        for (var i = 0; i < chw.Length; i++) chw[i] = (float)(rnd.Next(256) * (1.0 / 255));
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(6, 8, 6));

        var png = ImageEncoding.EncodePng(chw, height: 8, width: 6);

        Assert.Equal(new ImageInfo("PNG", 6, 8), ImageProbe.Identify(png, ImageLimits.Default));
        Assert.Equal(chw, p.Load(png));
    }

    [Fact]
    public void EncodePng_clamps_out_of_range_values()
    {
        float[] chw = [-1f, 2f, float.NaN, 0.5f, 0f, 1f];
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(1, 1, 2));
        var back = p.Load(ImageEncoding.EncodePng(chw, height: 1, width: 2));
        Assert.Equal([0f, 1f, 0f, 128 / 255f, 0f, 1f], back);
    }

    [Fact]
    public void LoadFile_detects_the_format_by_content_not_by_extension()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tapt-{Guid.NewGuid():N}.jpg");
        var png = TestImages.Solid(40, 40, new Rgb24(0, 255, 0), "png");
        File.WriteAllBytes(path, png);
        try
        {
            Assert.Equal("PNG", ImageProbe.Identify(File.ReadAllBytes(path), ImageLimits.Default).Format);
            AssertColour(Small.LoadFile(path), 32, 32, 3, 3, new Rgb24(0, 255, 0));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void LoadFile_of_a_missing_file_throws_FileNotFoundException()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tapt-missing-{Guid.NewGuid():N}.png");
        Assert.Throws<FileNotFoundException>(() => Small.LoadFile(path));
        Assert.Throws<FileNotFoundException>(() => Small.LoadFile(Path.GetTempPath())); // a directory
    }

    [Fact]
    public void LoadFile_checks_the_size_limit_before_reading()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tapt-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, TestImages.Noise(64, 64, "png"));
        try
        {
            var p = new ImagePreprocessor(new ImagePreprocessorOptions(32, 32, 32), new ImageLimits(MaxBytes: 1000));
            var e = Assert.Throws<ImageRejectedException>(() => p.LoadFile(path));
            Assert.Equal(ImageRejectionReason.TooManyBytes, e.Reason);
            Assert.Contains("above the 1000 bytes limit", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Invalid_options_and_limits_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImagePreprocessor(new ImagePreprocessorOptions(0, 224, 224)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImagePreprocessor(new ImagePreprocessorOptions(224, 224, -1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(224), new ImageLimits(MaxPixels: 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageProbe.Identify([1, 2, 3], new ImageLimits(MaxFrames: 0)));
    }

    [Fact]
    public void Concurrent_decodes_give_the_same_result_as_sequential_ones()
    {
        var inputs = Enumerable.Range(0, 6).Select(i => TestImages.Noise(48 + i, 40, TestImages.Formats[i % 5], seed: i)).ToArray();
        var expected = inputs.Select(b => Small.Load(b)).ToArray();
        var results = new float[48][];

        Parallel.For(0, results.Length, i =>
        {
            results[i] = Small.Load(inputs[i % inputs.Length]);
            var e = Assert.Throws<ImageRejectedException>(() => Small.Load(inputs[i % inputs.Length].AsSpan(0, inputs[i % inputs.Length].Length / 2)));
            Assert.Equal(ImageRejectionReason.Truncated, e.Reason);
        });

        for (var i = 0; i < results.Length; i++) Assert.Equal(expected[i % inputs.Length], results[i]);
    }

    [Fact]
    public void Bilinear_resampling_of_a_grey_png_matches_the_training_upsampling_and_bicubic_does_not()
    {
        // The default model was trained on 28x28 images upsampled by torch (bilinear, align_corners = false);
        // served with resample 2, an uploaded PNG of the same image must reach the model as the same pixels.
        var rng = new Random(5);
        var grey = new byte[28 * 28];
        rng.NextBytes(grey);
        using var png = new MemoryStream();
        using (var img = new Image<L8>(28, 28))
        {
            for (var y = 0; y < 28; y++)
                for (var x = 0; x < 28; x++) img[x, y] = new L8(grey[y * 28 + x]);
            img.SaveAsPng(png);
        }
        using var expected = new LabelledImages(["a"], grey, [0], 28, 28).ToTensor([0], 56);
        var reference = expected.contiguous().data<float>().ToArray();

        float MaxError(ImageResampling resampling)
        {
            var served = new ImagePreprocessor(new ImagePreprocessorOptions(56, 56, 56, resampling)).Load(png.ToArray());
            return served.Zip(reference, (a, b) => Math.Abs(a - b)).Max();
        }

        var bilinear = MaxError(ImageResampling.Bilinear);
        Assert.True(bilinear <= 1.01f / 255, $"bilinear differs by {bilinear * 255:F2}/255");
        Assert.True(MaxError(ImageResampling.Bicubic) > 5f / 255, "bicubic should differ visibly on noise");
    }
}
