using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace TaptPlatform.Vision.Tests.Imaging;

/// <summary>Test images generated in code, and hand-crafted hostile files.</summary>
internal static class TestImages
{
    public static readonly string[] Formats = ["png", "jpeg", "webp", "bmp", "gif"];

    public static IImageEncoder Encoder(string format) => format switch
    {
        "png" => new PngEncoder(),
        "jpeg" => new JpegEncoder { Quality = 95 },
        "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        "webp-lossy" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 },
        "bmp" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
        "gif" => new GifEncoder(),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    public static byte[] Encode<TPixel>(Image<TPixel> image, string format) where TPixel : unmanaged, IPixel<TPixel>
    {
        using var ms = new MemoryStream();
        image.Save(ms, Encoder(format));
        return ms.ToArray();
    }

    public static byte[] Solid(int width, int height, Rgb24 colour, string format)
    {
        using var image = new Image<Rgb24>(width, height, colour);
        return Encode(image, format);
    }

    /// <summary>Deterministic noise, so compressed data is large enough that cutting it in half hits pixel data.</summary>
    public static byte[] Noise(int width, int height, string format, int seed = 1)
    {
        var rnd = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)rnd.Next(256), (byte)rnd.Next(256), (byte)rnd.Next(256));
        return Encode(image, format);
    }

    /// <summary>A smooth gradient: cheap to encode even at a megapixel.</summary>
    public static byte[] Gradient(int width, int height, string format)
    {
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < width; x++) row[x] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), 128);
            }
        });
        return Encode(image, format);
    }

    /// <summary>Left half red, right half blue.</summary>
    public static Image<Rgb24> HalfRedHalfBlue(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                image[x, y] = x < width / 2 ? new Rgb24(255, 0, 0) : new Rgb24(0, 0, 255);
        return image;
    }

    // ---- PNG crafting ---------------------------------------------------------------------------------------

    public static byte[] PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static byte[] PngChunk(string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    /// <summary>A complete, CRC-correct PNG whose IHDR claims <paramref name="width"/> x <paramref name="height"/>
    /// (8-bit RGB) but whose IDAT holds only a few bytes.</summary>
    public static byte[] PngWithDeclaredSize(uint width, uint height) => CraftedPng(width, height, rawBytes: 64);

    public static byte[] PngIhdr(uint width, uint height, bool interlaced = false, byte colourType = 2, byte bitDepth = 8)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = bitDepth;
        ihdr[9] = colourType;
        ihdr[12] = (byte)(interlaced ? 1 : 0);
        return PngChunk("IHDR", ihdr);
    }

    /// <summary>A structurally perfect PNG (valid chunks and CRCs, valid zlib) whose image data inflates to
    /// <paramref name="rawBytes"/> zero bytes, whatever the header needs.</summary>
    public static byte[] CraftedPng(uint width, uint height, int rawBytes, bool interlaced = false) =>
        [.. PngSignature, .. PngIhdr(width, height, interlaced), .. PngChunk("IDAT", Zlib(new byte[rawBytes])), .. PngChunk("IEND", [])];

    /// <summary>A valid 4x4 PNG with a zTXt chunk that inflates to <paramref name="inflatedBytes"/> of zeros.</summary>
    public static byte[] PngWithCompressedTextBomb(int inflatedBytes)
    {
        var png = Solid(4, 4, new Rgb24(1, 2, 3), "png");
        byte[] ztxt = [.. "Comment"u8, 0, 0, .. Zlib(new byte[inflatedBytes])];
        const int afterIhdr = 8 + 25;
        return [.. png.AsSpan(0, afterIhdr), .. PngChunk("zTXt", ztxt), .. png.AsSpan(afterIhdr)];
    }

    public static byte[] Zlib(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(data);
        return ms.ToArray();
    }

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var c = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            c ^= b;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    // ---- GIF crafting ---------------------------------------------------------------------------------------

    /// <summary>
    /// A GIF89a with a <paramref name="screenWidth"/> x <paramref name="screenHeight"/> logical screen, a two-colour
    /// palette (red, blue) and <paramref name="frames"/> 1x1 frames of red (23 bytes each): a frame bomb if decoded
    /// in full (every frame is a full-screen canvas).
    /// </summary>
    public static byte[] GifFrameBomb(int frames, ushort screenWidth = 1000, ushort screenHeight = 1000,
        ushort frameWidth = 1, ushort frameHeight = 1)
    {
        using var ms = new MemoryStream();
        ms.Write("GIF89a"u8);
        Span<byte> lsd = stackalloc byte[7];
        BinaryPrimitives.WriteUInt16LittleEndian(lsd, screenWidth);
        BinaryPrimitives.WriteUInt16LittleEndian(lsd[2..], screenHeight);
        lsd[4] = 0x80; // global colour table, 2 entries
        ms.Write(lsd);
        ms.Write([255, 0, 0, 0, 0, 255]);
        ms.Write([0x21, 0xFF, 0x0B, .. "NETSCAPE2.0"u8, 3, 1, 0, 0, 0]); // loop forever
        byte[] descriptor = [0x2C, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        BinaryPrimitives.WriteUInt16LittleEndian(descriptor.AsSpan(5), frameWidth);
        BinaryPrimitives.WriteUInt16LittleEndian(descriptor.AsSpan(7), frameHeight);
        for (var i = 0; i < frames; i++)
        {
            ms.Write([0x21, 0xF9, 4, 0, 10, 0, 0, 0]); // graphic control, 100 ms
            ms.Write(descriptor);
            ms.Write([2, 2, 0x44, 0x01, 0]); // LZW: clear, index 0, end
        }
        ms.WriteByte(0x3B);
        return ms.ToArray();
    }

    // ---- WebP crafting --------------------------------------------------------------------------------------

    /// <summary>An animated WebP (VP8X + ANIM + <paramref name="frames"/> ANMF chunks of an 8x8 lossless frame).</summary>
    public static byte[] AnimatedWebp(int frames)
    {
        var vp8l = Solid(8, 8, new Rgb24(255, 0, 0), "webp")[12..]; // the VP8L chunk, header included
        var vp8x = new byte[10];
        vp8x[0] = 0x02; // animation flag
        WriteUInt24(vp8x.AsSpan(4), 7);
        WriteUInt24(vp8x.AsSpan(7), 7);
        var frameHeader = new byte[16];
        WriteUInt24(frameHeader.AsSpan(6), 7);
        WriteUInt24(frameHeader.AsSpan(9), 7);
        WriteUInt24(frameHeader.AsSpan(12), 100);
        var anmf = RiffChunk("ANMF", [.. frameHeader, .. vp8l]);

        using var body = new MemoryStream();
        body.Write("WEBP"u8);
        body.Write(RiffChunk("VP8X", vp8x));
        body.Write(RiffChunk("ANIM", new byte[6]));
        for (var i = 0; i < frames; i++) body.Write(anmf);
        var file = new byte[8 + body.Length];
        "RIFF"u8.CopyTo(file);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), (uint)body.Length);
        body.ToArray().CopyTo(file, 8);
        return file;
    }

    private static byte[] RiffChunk(string fourcc, byte[] data)
    {
        var chunk = new byte[8 + data.Length + (data.Length & 1)];
        Encoding.ASCII.GetBytes(fourcc).CopyTo(chunk, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(chunk.AsSpan(4), (uint)data.Length);
        data.CopyTo(chunk, 8);
        return chunk;
    }

    private static void WriteUInt24(Span<byte> s, int v)
    {
        s[0] = (byte)v;
        s[1] = (byte)(v >> 8);
        s[2] = (byte)(v >> 16);
    }

    // ---- BMP crafting ---------------------------------------------------------------------------------------

    /// <summary>A 70-byte BMP whose BITMAPINFOHEADER declares <paramref name="width"/> x <paramref name="height"/> at 24 bpp.</summary>
    public static byte[] BmpWithDeclaredSize(int width, int height)
    {
        var bmp = new byte[70];
        "BM"u8.CopyTo(bmp);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), bmp.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), 24);
        return bmp;
    }
}
