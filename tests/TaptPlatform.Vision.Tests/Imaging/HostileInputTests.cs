using System.Diagnostics;
using SixLabors.ImageSharp.PixelFormats;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Tests.Imaging;

/// <summary>The pipeline is the front door for untrusted uploads: every hostile input gets its specific reason,
/// quickly, without large allocations, and the pipeline keeps working afterwards.</summary>
public class HostileInputTests
{
    private static readonly ImagePreprocessor Preprocessor = new(ImagePreprocessorOptions.ForImageSize(224));

    private static ImageRejectedException Rejected(byte[] input, ImagePreprocessor? p = null)
    {
        p ??= Preprocessor;
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<ImageRejectedException>(() => p.Load(input));
        // A hang guard, not a performance check (timing lives in `tapt bench`): a decoder loop would never return.
        Assert.True(sw.ElapsedMilliseconds < 30_000, $"rejection took {sw.ElapsedMilliseconds} ms");
        // The probe alone must agree (same checks, no decode), except for post-decode checks.
        if (e.Reason is not (ImageRejectionReason.ExtremeAspectRatio or ImageRejectionReason.AllocationLimitExceeded))
            Assert.Equal(e.Reason, Assert.Throws<ImageRejectedException>(() => ImageProbe.Identify(input, p.Limits)).Reason);
        return e;
    }

    [Fact]
    public void Zero_bytes_are_rejected_as_Empty()
    {
        Assert.Equal(ImageRejectionReason.Empty, Rejected([]).Reason);
    }

    [Fact]
    public void Random_garbage_is_rejected_as_UnknownFormat()
    {
        var garbage = new byte[4096];
        new Random(42).NextBytes(garbage);
        var e = Rejected(garbage);
        Assert.Equal(ImageRejectionReason.UnknownFormat, e.Reason);
        Assert.Contains("supported: PNG, JPEG, WebP, BMP, GIF", e.Message);
    }

    [Fact]
    public void Formats_outside_the_allow_list_such_as_tiff_are_UnknownFormat()
    {
        byte[] tiff = [0x49, 0x49, 0x2A, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(ImageRejectionReason.UnknownFormat, Rejected(tiff).Reason);
    }

    [Fact]
    public void Input_above_the_byte_limit_is_TooManyBytes()
    {
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(224), new ImageLimits(MaxBytes: 100));
        var e = Rejected(TestImages.Noise(32, 32, "png"), p);
        Assert.Equal(ImageRejectionReason.TooManyBytes, e.Reason);
        Assert.Contains("above the 100 bytes limit", e.Message);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpeg")]
    [InlineData("webp")]
    [InlineData("webp-lossy")]
    [InlineData("bmp")]
    [InlineData("gif")]
    public void A_file_cut_in_half_is_rejected_as_Truncated(string format)
    {
        var full = TestImages.Noise(64, 64, format);
        Assert.Equal(3 * 224 * 224, Preprocessor.Load(full).Length); // the whole file is fine

        var e = Rejected(full[..(full.Length / 2)]);

        Assert.Equal(ImageRejectionReason.Truncated, e.Reason);
        Assert.StartsWith("image is truncated", e.Message);
    }

    [Fact]
    public void A_png_with_a_bad_crc_is_Corrupt()
    {
        var png = TestImages.Solid(16, 16, new Rgb24(9, 9, 9), "png");
        png[32] ^= 0xFF; // last byte of the IHDR CRC
        Assert.Equal(ImageRejectionReason.Corrupt, Rejected(png).Reason);
    }

    [Fact]
    public void A_jpeg_without_any_scan_is_Corrupt()
    {
        byte[] jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, .. "JFIF"u8, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xFF, 0xD9];
        Assert.Equal(ImageRejectionReason.Corrupt, Rejected(jpeg).Reason);
    }

    [Fact]
    public void A_png_header_claiming_100000x100000_is_TooManyPixels_before_decoding()
    {
        var png = TestImages.PngWithDeclaredSize(100_000, 100_000);
        Assert.True(png.Length < 200);

        var e = Rejected(png);

        Assert.Equal(ImageRejectionReason.TooManyPixels, e.Reason);
        Assert.Contains("image is 100000x100000 = 10000.0 MP, above the 40.0 MP limit", e.Message);
    }

    [Fact]
    public void A_png_header_with_a_zero_width_is_InvalidDimensions()
    {
        Assert.Equal(ImageRejectionReason.InvalidDimensions, Rejected(TestImages.PngWithDeclaredSize(0, 100)).Reason);
    }

    [Fact]
    public void A_bmp_header_declaring_a_huge_size_is_TooManyPixels()
    {
        var e = Rejected(TestImages.BmpWithDeclaredSize(100_000, -100_000)); // negative = top-down
        Assert.Equal(ImageRejectionReason.TooManyPixels, e.Reason);
        Assert.Contains("100000x100000", e.Message);
    }

    [Fact]
    public void A_bmp_whose_pixel_data_is_missing_is_Truncated()
    {
        Assert.Equal(ImageRejectionReason.Truncated, Rejected(TestImages.BmpWithDeclaredSize(100, 100)).Reason);
    }

    [Fact]
    public void An_rle_bmp_whose_compressed_data_is_missing_is_Truncated()
    {
        var bmp = TestImages.BmpWithDeclaredSize(10, 10);
        System.Buffers.Binary.BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), 8); // 8 bpp
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(30), 1); // BI_RLE8
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(34), 1000); // compressed size
        Assert.Equal(ImageRejectionReason.Truncated, Rejected(bmp).Reason);
    }

    [Fact]
    public void A_gif_with_thousands_of_frames_is_rejected_as_TooManyFrames()
    {
        var gif = TestImages.GifFrameBomb(frames: 5000);
        Assert.True(gif.Length < 150_000);

        var e = Rejected(gif);

        Assert.Equal(ImageRejectionReason.TooManyFrames, e.Reason);
        Assert.Contains("above the 1000 frame limit", e.Message);
    }

    [Fact]
    public void A_gif_frame_bomb_under_a_raised_frame_limit_decodes_only_the_first_frame()
    {
        // 20000 frames on a 1000x1000 canvas would be 60 GB of Rgb24 if every frame were decoded.
        var gif = TestImages.GifFrameBomb(frames: 20_000);
        Assert.True(gif.Length < 500_000);
        var p = new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(224), new ImageLimits(MaxFrames: 100_000));

        var before = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        var chw = p.Load(gif);
        sw.Stop();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(3 * 224 * 224, chw.Length);
        Assert.True(sw.ElapsedMilliseconds < 30_000, $"took {sw.ElapsedMilliseconds} ms (hang guard)");
        Assert.True(allocated < 64 << 20, $"allocated {allocated} managed bytes");
    }

    [Fact]
    public void A_gif_frame_larger_than_the_pixel_limit_is_TooManyPixels()
    {
        var gif = TestImages.GifFrameBomb(frames: 1, screenWidth: 10, screenHeight: 10, frameWidth: 65535, frameHeight: 65535);
        var e = Rejected(gif);
        Assert.Equal(ImageRejectionReason.TooManyPixels, e.Reason);
        Assert.Contains("65535x65535", e.Message);
    }

    [Fact]
    public void An_extremely_elongated_image_is_ExtremeAspectRatio_instead_of_a_huge_resize()
    {
        // 4000x1 -> shorter side to 224 would be 896000x224 = 200.7 MP.
        var e = Rejected(TestImages.Solid(4000, 1, new Rgb24(1, 2, 3), "png"));
        Assert.Equal(ImageRejectionReason.ExtremeAspectRatio, e.Reason);
        Assert.Contains("896000x224 = 200.7 MP, above the 40.0 MP limit", e.Message);
    }

    [Fact]
    public void A_png_compressed_text_bomb_is_never_inflated()
    {
        // ~64 KB of zTXt that inflates to 64 MiB; ImageSharp 2.1 inflates it unboundedly unless metadata is ignored.
        var png = TestImages.PngWithCompressedTextBomb(64 << 20);
        Assert.True(png.Length < 200_000);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var chw = Preprocessor.Load(png);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(3 * 224 * 224, chw.Length);
        Assert.True(allocated < 16 << 20, $"allocated {allocated} managed bytes");
    }

    [Fact]
    public void Png_bytes_with_a_jpeg_name_are_still_detected_as_png()
    {
        var path = Path.Combine(Path.GetTempPath(), $"tapt-{Guid.NewGuid():N}.jpg");
        File.WriteAllBytes(path, TestImages.Solid(30, 30, new Rgb24(7, 8, 9), "png"));
        try
        {
            Assert.Equal(3 * 224 * 224, Preprocessor.LoadFile(path).Length);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void The_pipeline_still_works_after_every_hostile_input()
    {
        var good = TestImages.Noise(50, 40, "jpeg");
        var baseline = Preprocessor.Load(good);
        var garbage = new byte[2048];
        new Random(7).NextBytes(garbage);
        var truncatedPng = TestImages.Noise(64, 64, "png");
        var truncatedJpeg = TestImages.Noise(64, 64, "jpeg");

        var hostile = new (byte[] Bytes, ImageRejectionReason Reason)[]
        {
            ([], ImageRejectionReason.Empty),
            (garbage, ImageRejectionReason.UnknownFormat),
            (truncatedPng[..(truncatedPng.Length / 2)], ImageRejectionReason.Truncated),
            (truncatedJpeg[..(truncatedJpeg.Length / 2)], ImageRejectionReason.Truncated),
            (TestImages.PngWithDeclaredSize(100_000, 100_000), ImageRejectionReason.TooManyPixels),
            (TestImages.PngWithDeclaredSize(0, 0), ImageRejectionReason.InvalidDimensions),
            (TestImages.BmpWithDeclaredSize(100_000, 100_000), ImageRejectionReason.TooManyPixels),
            (TestImages.GifFrameBomb(frames: 3000), ImageRejectionReason.TooManyFrames),
            (TestImages.Solid(4000, 1, new Rgb24(0, 0, 0), "png"), ImageRejectionReason.ExtremeAspectRatio),
        };
        foreach (var (bytes, reason) in hostile)
            Assert.Equal(reason, Assert.Throws<ImageRejectedException>(() => Preprocessor.Load(bytes)).Reason);

        Assert.Equal(baseline, Preprocessor.Load(good));
    }
}

/// <summary>What the upload probe refuses that the decoder or the resize would otherwise fail on later, in the engine.</summary>
public class UploadProbeTests
{
    private static byte[] Png(int width, int height, Func<byte[], IEnumerable<byte[]>> split)
    {
        static byte[] Chunk(string type, byte[] data)
        {
            var t = System.Text.Encoding.ASCII.GetBytes(type);
            var crc = TestImages.Crc32([.. t, .. data]);
            return [.. BigEndian((uint)data.Length), .. t, .. data, .. BigEndian(crc)];
        }
        static byte[] BigEndian(uint v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];
        var raw = new byte[height * (1 + width * 3)];
        new Random(1).NextBytes(raw);
        for (var y = 0; y < height; y++) raw[y * (1 + width * 3)] = 0;   // filter type: none
        using var ms = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(ms, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) z.Write(raw);
        byte[] header = [.. BigEndian((uint)width), .. BigEndian((uint)height), 8, 2, 0, 0, 0];
        return [137, 80, 78, 71, 13, 10, 26, 10, .. Chunk("IHDR", header), .. split(ms.ToArray()).SelectMany(p => Chunk("IDAT", p)), .. Chunk("IEND", [])];
    }

    [Fact]
    public void A_png_whose_first_image_data_chunk_is_one_byte_is_refused_at_upload_as_corrupt()
    {
        var png = Png(56, 56, z => [z[..1], z[1..]]);
        var e = Assert.Throws<ImageRejectedException>(() => ImageProbe.Identify(png, ImageLimits.Upload));
        Assert.Equal(ImageRejectionReason.Corrupt, e.Reason);
        Assert.Contains("zlib header", e.Message);
        // Two bytes first, then one-byte chunks, decodes: the rule is the header, not the chunk count.
        var fine = Png(56, 56, z => [z[..2], .. Enumerable.Range(2, z.Length - 2).Select(i => z[i..(i + 1)])]);
        Assert.Equal(3 * 56 * 56, new ImagePreprocessor(ImagePreprocessorOptions.ForImageSize(56)).Load(fine).Length);
    }

    [Theory]
    [InlineData(100_000, 1)]
    [InlineData(1, 5_000)]
    [InlineData(2_020, 20)]
    public void An_image_far_longer_than_wide_is_refused_at_upload(int width, int height)
    {
        var e = Assert.Throws<ImageRejectedException>(() => ImageProbe.Identify(Png(width, height, z => [z]), ImageLimits.Upload));
        Assert.Equal(ImageRejectionReason.ExtremeAspectRatio, e.Reason);
        Assert.Contains($"{width}x{height}", e.Message);
    }

    [Fact]
    public void A_panorama_within_the_ratio_passes() =>
        Assert.Equal(1000, ImageProbe.Identify(Png(1000, 100, z => [z]), ImageLimits.Upload).Width);
}
