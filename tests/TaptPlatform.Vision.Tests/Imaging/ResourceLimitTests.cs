using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Tests.Imaging;

public class ResourceLimitTests
{
    [Fact]
    public void The_decoder_allocator_has_a_per_allocation_cap_derived_from_the_pixel_limit()
    {
        Assert.Equal(207, ImageLimits.Default.AllocationLimitMegabytes); // 40 MP * 4 B * 1.25 + 16 MiB
        var limits = new ImageLimits(MaxPixels: 1_000_000);
        var config = DecoderConfiguration.For(limits);

        Assert.Same(config, DecoderConfiguration.For(new ImageLimits(MaxPixels: 1_000_000)));
        Assert.Throws<InvalidMemoryOperationException>(() => new Image<Rgb24>(config, 4000, 4000)); // 48 MB > 21 MiB
        using var fits = new Image<Rgb24>(config, 1000, 1000);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpeg")]
    [InlineData("webp")]
    [InlineData("webp-lossy")]
    [InlineData("bmp")]
    [InlineData("gif")]
    public void An_image_at_exactly_the_pixel_limit_decodes_within_the_allocation_cap(string format)
    {
        var p = new ImagePreprocessor(new ImagePreprocessorOptions(32, 32, 32), new ImageLimits(MaxPixels: 1000 * 800));

        Assert.Equal(3 * 32 * 32, p.Load(TestImages.Gradient(1000, 800, format)).Length);
        var e = Assert.Throws<ImageRejectedException>(() => p.Load(TestImages.Gradient(1000, 801, format)));
        Assert.Equal(ImageRejectionReason.TooManyPixels, e.Reason);
        Assert.Contains("1000x801 = 0.8 MP, above the 0.8 MP limit", e.Message);
    }

    [Fact]
    public void An_allocation_failure_inside_a_decoder_is_AllocationLimitExceeded()
    {
        var wrapped = new InvalidImageContentException("Cannot decode image.", new InvalidMemoryOperationException("too big"));
        Assert.Equal(ImageRejectionReason.AllocationLimitExceeded, ImageProbe.Classify(wrapped, "PNG", null).Reason);
        Assert.Equal(ImageRejectionReason.Corrupt, ImageProbe.Classify(new InvalidImageContentException("bad"), "PNG", null).Reason);
        Assert.Equal(ImageRejectionReason.Unsupported, ImageProbe.Classify(new NotSupportedException("x"), "JPEG", null).Reason);
    }

    [Fact]
    public void An_animated_webp_with_too_many_frames_is_TooManyFrames()
    {
        var e = Assert.Throws<ImageRejectedException>(() => ImageProbe.Identify(TestImages.AnimatedWebp(1500), ImageLimits.Default));
        Assert.Equal(ImageRejectionReason.TooManyFrames, e.Reason);
    }

    [Fact]
    public void An_animated_webp_is_Unsupported_because_imagesharp_2_1_cannot_decode_it()
    {
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(32));
        var webp = TestImages.AnimatedWebp(2);
        Assert.Equal(ImageRejectionReason.Unsupported,
            Assert.Throws<ImageRejectedException>(() => ImageProbe.Identify(webp, ImageLimits.Default)).Reason);
        Assert.Equal(ImageRejectionReason.Unsupported, Assert.Throws<ImageRejectedException>(() => p.Load(webp)).Reason);
    }

    [Fact]
    public void An_endless_file_is_cut_off_at_the_byte_limit()
    {
        if (!File.Exists("/dev/zero")) return;
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(32), new ImageLimits(MaxBytes: 1 << 20));
        Assert.Equal(ImageRejectionReason.TooManyBytes, Assert.Throws<ImageRejectedException>(() => p.LoadFile("/dev/zero")).Reason);
    }
}
