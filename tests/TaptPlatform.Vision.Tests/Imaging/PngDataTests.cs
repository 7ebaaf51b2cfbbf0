using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Tests.Imaging;

/// <summary>
/// PNG image data is verified before decoding: ImageSharp 2.1.13 silently decodes a short zlib stream, and for an
/// interlaced PNG spins forever when the data runs out (its Adam7 loop re-enters itself).
/// </summary>
public class PngDataTests
{
    private static readonly ImagePreprocessor Preprocessor = new(ImagePreprocessorOptions.ForImageSize(32));

    /// <summary>Runs the load on another thread so that a regression fails the test instead of hanging the run.</summary>
    private static ImageRejectionReason? LoadWithin(byte[] png, int milliseconds = 10_000)
    {
        var task = Task.Run(() =>
        {
            try
            {
                Preprocessor.Load(png);
                return (ImageRejectionReason?)null;
            }
            catch (ImageRejectedException e)
            {
                return e.Reason;
            }
        });
        Assert.True(task.Wait(milliseconds), "decoding did not finish: the decoder is looping");
        return task.Result;
    }

    [Fact]
    public void An_interlaced_png_with_too_little_image_data_is_Truncated_instead_of_hanging_the_decoder()
    {
        // 300x200 interlaced RGB needs 180375 inflated bytes; this one has 100, in valid chunks with valid CRCs.
        Assert.Equal(ImageRejectionReason.Truncated, LoadWithin(TestImages.CraftedPng(300, 200, rawBytes: 100, interlaced: true)));
    }

    [Fact]
    public void A_png_whose_compressed_data_ends_early_is_Truncated()
    {
        Assert.Equal(ImageRejectionReason.Truncated, LoadWithin(TestImages.CraftedPng(300, 200, rawBytes: 200 * 901 - 1)));
        Assert.Null(LoadWithin(TestImages.CraftedPng(300, 200, rawBytes: 200 * 901))); // exactly enough
    }

    [Fact]
    public void A_complete_interlaced_png_decodes_like_the_plain_one()
    {
        using var image = TestImages.HalfRedHalfBlue(40, 30);
        using var interlaced = new MemoryStream();
        image.Save(interlaced, new PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7 });

        Assert.Equal(Preprocessor.Load(TestImages.Encode(image, "png")), Preprocessor.Load(interlaced.ToArray()));
    }

    [Fact]
    public void Idat_chunks_that_are_not_consecutive_are_Corrupt()
    {
        var z = TestImages.Zlib(new byte[8 * 25]);
        byte[] png =
        [
            .. TestImages.PngSignature, .. TestImages.PngIhdr(8, 8),
            .. TestImages.PngChunk("IDAT", z[..10]), .. TestImages.PngChunk("tEXt", "a\0b"u8.ToArray()),
            .. TestImages.PngChunk("IDAT", z[10..]), .. TestImages.PngChunk("IEND", []),
        ];
        Assert.Equal(ImageRejectionReason.Corrupt, LoadWithin(png));
    }

    [Fact]
    public void Image_data_that_is_not_zlib_is_Corrupt()
    {
        byte[] png = [.. TestImages.PngSignature, .. TestImages.PngIhdr(8, 8), .. TestImages.PngChunk("IDAT", [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF]), .. TestImages.PngChunk("IEND", [])];
        Assert.Equal(ImageRejectionReason.Corrupt, LoadWithin(png));
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(0, 4)]
    [InlineData(0, 16)]
    [InlineData(3, 1)]
    [InlineData(3, 4)]
    [InlineData(4, 8)]
    [InlineData(6, 16)]
    public void Packed_and_deep_pngs_of_every_colour_type_pass_the_data_check(byte colourType, byte bitDepth)
    {
        // 13x7 (odd sizes exercise the bit packing); the expected size is computed independently here.
        var bitsPerPixel = bitDepth * colourType switch { 2 => 3, 4 => 2, 6 => 4, _ => 1 };
        var raw = 7 * (1 + (13 * bitsPerPixel + 7) / 8);
        byte[] plte = colourType == 3 ? TestImages.PngChunk("PLTE", new byte[3 * 16]) : [];
        byte[] Png(int rawBytes) =>
            [.. TestImages.PngSignature, .. TestImages.PngIhdr(13, 7, false, colourType, bitDepth), .. plte,
             .. TestImages.PngChunk("IDAT", TestImages.Zlib(new byte[rawBytes])), .. TestImages.PngChunk("IEND", [])];

        Assert.Null(LoadWithin(Png(raw)));
        Assert.Equal(ImageRejectionReason.Truncated, LoadWithin(Png(raw - 1)));
    }

    [Fact]
    public void An_invalid_colour_type_and_depth_combination_is_Corrupt()
    {
        byte[] png = [.. TestImages.PngSignature, .. TestImages.PngIhdr(8, 8, false, colourType: 2, bitDepth: 4),
            .. TestImages.PngChunk("IDAT", TestImages.Zlib(new byte[200])), .. TestImages.PngChunk("IEND", [])];
        Assert.Equal(ImageRejectionReason.Corrupt, LoadWithin(png));
    }
}
