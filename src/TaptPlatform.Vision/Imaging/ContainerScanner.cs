// Around 400 lines because it walks five container formats (PNG, GIF, BMP, JPEG, WebP) with one result type; each
// format's walk is a few small methods that read better beside the others than in files of their own.
using System.Buffers.Binary;

namespace TaptPlatform.Vision.Imaging;

/// <summary>What a structural walk of an encoded image found. Problems are recorded, not thrown, so the caller
/// can rank them (e.g. an absurd declared size wins over the truncation it implies).</summary>
internal sealed class ScanResult
{
    /// <summary>Width and height read directly from the header, where the scanner parses it (PNG, GIF, BMP, JPEG).</summary>
    public long? HeaderWidth { get; set; }
    public long? HeaderHeight { get; set; }

    /// <summary>Frames counted so far; the walk stops as soon as this exceeds the limit.</summary>
    public int FrameCount { get; set; }

    /// <summary>Largest frame (GIF image descriptor) in pixels, with its size for the message.</summary>
    public long MaxFramePixels { get; set; }
    public string? MaxFrameSize { get; set; }

    public string? Truncated { get; set; }
    public string? Corrupt { get; set; }
}

/// <summary>
/// Linear walks of the container structure of PNG, JPEG, GIF, WebP and BMP, run before ImageSharp sees the data.
/// ImageSharp 2.1 decodes truncated files silently (missing rows come out black/grey) and hangs on short interlaced
/// PNG data, so truncation is detected here; the GIF and WebP walks also count frames, which 2.1's
/// <c>IImageInfo</c> does not expose. Only the PNG data check allocates (pooled buffers, one bounded inflate).
/// </summary>
internal static class ContainerScanner
{
    public static ScanResult Scan(string format, ReadOnlySpan<byte> data, ImageLimits limits)
    {
        var r = new ScanResult();
        switch (format)
        {
            case "PNG": ScanPng(data, r, limits.MaxPixels); break;
            case "JPEG": ScanJpeg(data, r); break;
            case "GIF": ScanGif(data, r, limits.MaxFrames); break;
            case "WEBP": ScanWebp(data, r, limits.MaxFrames); break;
            case "BMP": ScanBmp(data, r); break;
        }
        return r;
    }

    // ---- PNG: signature, then chunks (length, type, data, CRC) until IEND --------------------------------------

    private static void ScanPng(ReadOnlySpan<byte> d, ScanResult r, long maxPixels)
    {
        long pos = 8;
        var first = true;
        PngHeader header = default;
        long idatStart = -1, idatBytes = 0;
        var idatRunEnded = false;
        while (true)
        {
            if (pos + 8 > d.Length)
            {
                r.Truncated = $"PNG ends at byte {d.Length} without an IEND chunk";
                return;
            }
            var length = BinaryPrimitives.ReadUInt32BigEndian(d[(int)pos..]);
            var type = d.Slice((int)pos + 4, 4);
            if (length > int.MaxValue)
            {
                r.Corrupt = $"PNG chunk at byte {pos} declares an impossible length {length}";
                return;
            }
            foreach (var c in type)
            {
                if (c is not ((>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z')))
                {
                    r.Corrupt = $"PNG chunk at byte {pos} has an invalid type";
                    return;
                }
            }
            var name = System.Text.Encoding.ASCII.GetString(type);
            if (first)
            {
                if (name != "IHDR" || length != 13)
                {
                    r.Corrupt = "PNG does not start with a 13-byte IHDR chunk";
                    return;
                }
                if (pos + 21 <= d.Length)
                {
                    header = PngHeader.Read(d.Slice((int)pos + 8, 13));
                    r.HeaderWidth = header.Width;
                    r.HeaderHeight = header.Height;
                }
                first = false;
            }
            var end = pos + 12 + length;
            if (end > d.Length)
            {
                r.Truncated = $"PNG {name} chunk at byte {pos} declares {length} data bytes but the file ends at byte {d.Length}";
                return;
            }
            if (name == "IDAT")
            {
                // Decoders read one run of consecutive IDAT chunks; a second run is never read.
                if (idatRunEnded) { r.Corrupt = "PNG IDAT chunks are not consecutive"; return; }
                // ImageSharp 2.1.13 reads the 2-byte zlib header from the first IDAT chunk alone and fails past its end.
                if (idatStart < 0 && length < 2) { r.Corrupt = "PNG's first IDAT chunk is shorter than the 2-byte zlib header"; return; }
                if (idatStart < 0) idatStart = pos;
                idatBytes += length;
            }
            else if (idatStart >= 0)
            {
                idatRunEnded = true;
            }
            if (name == "IEND")
            {
                if (idatStart < 0) { r.Corrupt = "PNG has no IDAT (image data) chunk"; return; }
                if (header.Error is { } error) { r.Corrupt = error; return; }
                if (header.Width * header.Height is > 0 and var pixels && pixels <= maxPixels)
                    VerifyPngImageData(d, idatStart, idatBytes, header, r);
                return;
            }
            pos = end;
        }
    }

    /// <summary>
    /// Inflates the IDAT stream (without keeping it) and checks it holds every scanline the header promises.
    /// ImageSharp 2.1.13 decodes a short stream silently, and for an <b>interlaced</b> PNG loops forever
    /// (the Adam7 loop re-enters itself when the data runs out), so this must run before any decode.
    /// Cost: one extra inflate, bounded by the expected size (at most MaxPixels * 8 bytes plus filter bytes).
    /// </summary>
    private static unsafe void VerifyPngImageData(ReadOnlySpan<byte> d, long idatStart, long idatBytes, PngHeader header, ScanResult r)
    {
        var expected = header.ExpectedDataBytes();
        // Small and pooled: the compressed data is read in place (never gathered into a buffer as large as the image,
        // which a shared pool would then keep).
        var scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long produced = 0;
            fixed (byte* data = d)
            {
                using var z = new System.IO.Compression.ZLibStream(new PngIdatStream(data, (int)idatStart, idatBytes), System.IO.Compression.CompressionMode.Decompress);
                while (produced < expected)
                {
                    var read = z.Read(scratch, 0, (int)Math.Min(scratch.Length, expected - produced));
                    if (read == 0) break;
                    produced += read;
                }
            }
            if (produced < expected)
                r.Truncated = $"PNG image data inflates to {produced} bytes but {header.Width}x{header.Height} " +
                              $"{(header.Interlaced ? "interlaced " : "")}needs {expected}";
        }
        catch (InvalidDataException e)
        {
            r.Corrupt = $"PNG image data is not a valid zlib stream ({e.Message})";
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private readonly record struct PngHeader(long Width, long Height, int BitDepth, int ColourType, bool Interlaced, string? Error)
    {
        public static PngHeader Read(ReadOnlySpan<byte> ihdr)
        {
            long w = BinaryPrimitives.ReadUInt32BigEndian(ihdr);
            long h = BinaryPrimitives.ReadUInt32BigEndian(ihdr[4..]);
            int depth = ihdr[8], colour = ihdr[9];
            var validDepth = colour switch
            {
                0 => depth is 1 or 2 or 4 or 8 or 16,
                3 => depth is 1 or 2 or 4 or 8,
                2 or 4 or 6 => depth is 8 or 16,
                _ => false,
            };
            string? error = null;
            if (!validDepth) error = $"PNG IHDR has an invalid colour type {colour} / bit depth {depth}";
            else if (ihdr[10] != 0 || ihdr[11] != 0) error = "PNG IHDR has an unknown compression or filter method";
            else if (ihdr[12] > 1) error = $"PNG IHDR has an unknown interlace method {ihdr[12]}";
            return new PngHeader(w, h, depth, colour, ihdr[12] == 1, error);
        }

        private int BitsPerPixel => BitDepth * ColourType switch { 2 => 3, 4 => 2, 6 => 4, _ => 1 };

        /// <summary>Filter byte plus packed pixels for every scanline (of every non-empty Adam7 pass).</summary>
        public long ExpectedDataBytes()
        {
            if (!Interlaced) return Height * (1 + (Width * BitsPerPixel + 7) / 8);
            ReadOnlySpan<int> x0 = [0, 4, 0, 2, 0, 1, 0], dx = [8, 8, 4, 4, 2, 2, 1];
            ReadOnlySpan<int> y0 = [0, 0, 4, 0, 2, 0, 1], dy = [8, 8, 8, 4, 4, 2, 2];
            long total = 0;
            for (var pass = 0; pass < 7; pass++)
            {
                var cols = Width > x0[pass] ? (Width - x0[pass] + dx[pass] - 1) / dx[pass] : 0;
                var rows = Height > y0[pass] ? (Height - y0[pass] + dy[pass] - 1) / dy[pass] : 0;
                if (cols > 0 && rows > 0) total += rows * (1 + (cols * BitsPerPixel + 7) / 8);
            }
            return total;
        }
    }

    // ---- JPEG: marker segments; after each SOS skip the entropy-coded data to the next real marker; need EOI ----

    private static void ScanJpeg(ReadOnlySpan<byte> d, ScanResult r)
    {
        var pos = 2; // after SOI
        var sawSof = false;
        var sawSos = false;
        while (true)
        {
            // Find the next 0xFF (bytes between segments are tolerated, as libjpeg does), skip fill bytes.
            var ff = pos < d.Length ? d[pos..].IndexOf((byte)0xFF) : -1;
            if (ff < 0) { r.Truncated = $"JPEG ends at byte {d.Length} without an EOI marker"; return; }
            pos += ff;
            while (pos < d.Length && d[pos] == 0xFF) pos++;
            if (pos >= d.Length) { r.Truncated = $"JPEG ends at byte {d.Length} without an EOI marker"; return; }
            var marker = d[pos++];
            if (marker == 0xD9) // EOI
            {
                if (!sawSos) r.Corrupt = "JPEG has no scan (SOS) before its EOI marker";
                return;
            }
            if (marker == 0x00 || marker == 0x01 || marker is >= 0xD0 and <= 0xD8) continue; // stuffed/standalone
            if (pos + 2 > d.Length) { r.Truncated = $"JPEG ends inside the header of marker 0xFF{marker:X2}"; return; }
            int length = BinaryPrimitives.ReadUInt16BigEndian(d[pos..]);
            if (length < 2) { r.Corrupt = $"JPEG marker 0xFF{marker:X2} at byte {pos - 2} has invalid length {length}"; return; }
            if (pos + length > d.Length)
            {
                r.Truncated = $"JPEG segment 0xFF{marker:X2} at byte {pos - 2} declares {length} bytes but the file ends at byte {d.Length}";
                return;
            }
            if (marker is >= 0xC0 and <= 0xCF && marker is not (0xC4 or 0xC8 or 0xCC))
            {
                sawSof = true;
                if (length >= 7 && r.HeaderWidth is null)
                {
                    r.HeaderHeight = BinaryPrimitives.ReadUInt16BigEndian(d[(pos + 3)..]);
                    r.HeaderWidth = BinaryPrimitives.ReadUInt16BigEndian(d[(pos + 5)..]);
                }
            }
            pos += length;
            if (marker != 0xDA) continue;

            // SOS: skip entropy-coded data. 0xFF00 is a stuffed byte, 0xFFD0-D7 are restart markers.
            if (!sawSof) { r.Corrupt = "JPEG has a scan (SOS) before any frame header (SOF)"; return; }
            sawSos = true;
            while (true)
            {
                var i = pos < d.Length ? d[pos..].IndexOf((byte)0xFF) : -1;
                if (i < 0 || pos + i + 1 >= d.Length) { r.Truncated = $"JPEG ends at byte {d.Length} inside compressed scan data"; return; }
                var p = pos + i;
                var next = d[p + 1];
                if (next == 0x00 || next is >= 0xD0 and <= 0xD7) { pos = p + 2; continue; }
                if (next == 0xFF) { pos = p + 1; continue; }
                pos = p;
                break;
            }
        }
    }

    // ---- GIF: header, logical screen, optional global table, then extension/image blocks until the trailer ----

    private static void ScanGif(ReadOnlySpan<byte> d, ScanResult r, int maxFrames)
    {
        if (d.Length < 13) { r.Truncated = $"GIF is {d.Length} bytes, shorter than its 13-byte header"; return; }
        r.HeaderWidth = BinaryPrimitives.ReadUInt16LittleEndian(d[6..]);
        r.HeaderHeight = BinaryPrimitives.ReadUInt16LittleEndian(d[8..]);
        long pos = 13;
        var flags = d[10];
        if ((flags & 0x80) != 0) pos += 3L << ((flags & 7) + 1);
        while (true)
        {
            if (pos > d.Length) { r.Truncated = $"GIF ends at byte {d.Length} inside a colour table"; return; }
            if (pos == d.Length)
            {
                // Many encoders omit the trailer; tolerated once a complete frame was read.
                if (r.FrameCount == 0) r.Truncated = $"GIF ends at byte {d.Length} before any image data";
                return;
            }
            var block = d[(int)pos++];
            switch (block)
            {
                case 0x3B: // trailer
                    if (r.FrameCount == 0) r.Corrupt = "GIF has no image";
                    return;
                case 0x21: // extension: label then sub-blocks
                    if (pos >= d.Length) { r.Truncated = $"GIF ends at byte {d.Length} inside an extension"; return; }
                    pos++;
                    if (!SkipSubBlocks(d, ref pos)) { r.Truncated = $"GIF ends at byte {d.Length} inside an extension"; return; }
                    break;
                case 0x2C: // image descriptor
                    {
                        if (pos + 9 > d.Length) { r.Truncated = $"GIF ends at byte {d.Length} inside an image descriptor"; return; }
                        var fw = (long)BinaryPrimitives.ReadUInt16LittleEndian(d[((int)pos + 4)..]);
                        var fh = (long)BinaryPrimitives.ReadUInt16LittleEndian(d[((int)pos + 6)..]);
                        var packed = d[(int)pos + 8];
                        pos += 9;
                        if ((packed & 0x80) != 0) pos += 3L << ((packed & 7) + 1);
                        if (pos >= d.Length) { r.Truncated = $"GIF ends at byte {d.Length} inside frame {r.FrameCount + 1}"; return; }
                        pos++; // LZW minimum code size
                        if (!SkipSubBlocks(d, ref pos)) { r.Truncated = $"GIF ends at byte {d.Length} inside the data of frame {r.FrameCount + 1}"; return; }
                        r.FrameCount++;
                        if (fw * fh > r.MaxFramePixels)
                        {
                            r.MaxFramePixels = fw * fh;
                            r.MaxFrameSize = $"{fw}x{fh}";
                        }
                        if (r.FrameCount > maxFrames) return; // enough to reject; do not walk the rest
                        break;
                    }
                default:
                    // Decoders (and browsers) stop at an unknown block; fine after a frame, garbage before one.
                    if (r.FrameCount == 0) r.Corrupt = $"GIF has an unknown block 0x{block:X2} at byte {pos - 1}";
                    return;
            }
        }
    }

    private static bool SkipSubBlocks(ReadOnlySpan<byte> d, ref long pos)
    {
        while (true)
        {
            if (pos >= d.Length) return false;
            var size = d[(int)pos++];
            if (size == 0) return true;
            pos += size;
            if (pos > d.Length) return false;
        }
    }

    // ---- WebP: RIFF size must fit, chunks must fit in the RIFF; count ANMF frames ----------------------------

    private static void ScanWebp(ReadOnlySpan<byte> d, ScanResult r, int maxFrames)
    {
        if (d.Length < 12) { r.Truncated = $"WebP is {d.Length} bytes, shorter than its RIFF header"; return; }
        long riffSize = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        if (riffSize < 4) { r.Corrupt = $"WebP RIFF size {riffSize} is too small"; return; }
        var riffEnd = 8 + riffSize;
        if (riffEnd > d.Length)
        {
            r.Truncated = $"WebP RIFF header declares {riffEnd} bytes but the file has {d.Length}";
            return;
        }
        long pos = 12;
        var sawImage = false;
        while (pos + 8 <= riffEnd)
        {
            var fourcc = d.Slice((int)pos, 4);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(d[((int)pos + 4)..]);
            if (pos + 8 + size > riffEnd)
            {
                r.Truncated = $"WebP chunk '{System.Text.Encoding.ASCII.GetString(fourcc)}' at byte {pos} declares {size} bytes past the end of the file";
                return;
            }
            if (fourcc.SequenceEqual("ANMF"u8))
            {
                sawImage = true;
                r.FrameCount++;
                if (r.FrameCount > maxFrames) return;
            }
            else if (fourcc.SequenceEqual("VP8 "u8) || fourcc.SequenceEqual("VP8L"u8))
            {
                sawImage = true;
            }
            pos += 8 + size + (size & 1);
        }
        if (!sawImage) r.Corrupt = "WebP has no image data (VP8, VP8L or ANMF chunk)";
        r.FrameCount = Math.Max(r.FrameCount, 1);
    }

    // ---- BMP: headers must fit; uncompressed pixel data must fit ---------------------------------------------

    private static void ScanBmp(ReadOnlySpan<byte> d, ScanResult r)
    {
        if (d.Length < 18) { r.Truncated = $"BMP is {d.Length} bytes, shorter than its headers"; return; }
        long offBits = BinaryPrimitives.ReadUInt32LittleEndian(d[10..]);
        long headerSize = BinaryPrimitives.ReadUInt32LittleEndian(d[14..]);
        if (headerSize < 12 || headerSize > 1024) { r.Corrupt = $"BMP info header size {headerSize} is invalid"; return; }
        long width, height;
        int bpp;
        uint compression;
        long imageSize = 0;
        if (headerSize == 12)
        {
            if (d.Length < 26) { r.Truncated = $"BMP ends at byte {d.Length} inside its info header"; return; }
            width = BinaryPrimitives.ReadUInt16LittleEndian(d[18..]);
            height = BinaryPrimitives.ReadUInt16LittleEndian(d[20..]);
            bpp = BinaryPrimitives.ReadUInt16LittleEndian(d[24..]);
            compression = 0;
        }
        else
        {
            if (d.Length < 34) { r.Truncated = $"BMP ends at byte {d.Length} inside its info header"; return; }
            width = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d[18..]));
            height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(d[22..]));
            bpp = BinaryPrimitives.ReadUInt16LittleEndian(d[28..]);
            compression = BinaryPrimitives.ReadUInt32LittleEndian(d[30..]);
            if (d.Length >= 38) imageSize = BinaryPrimitives.ReadUInt32LittleEndian(d[34..]);
        }
        r.HeaderWidth = width;
        r.HeaderHeight = height;
        if (14 + headerSize > d.Length) { r.Truncated = $"BMP ends at byte {d.Length} inside its {headerSize}-byte info header"; return; }

        // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: the pixel array size is fixed by the header.
        if (compression is 0 or 3 or 6 && bpp is 1 or 2 or 4 or 8 or 16 or 24 or 32)
        {
            var stride = (width * bpp + 31) / 32 * 4; // width < 2^31, so this fits in a long
            var needed = (UInt128)(ulong)offBits + (UInt128)(ulong)stride * (ulong)height;
            if (needed > (UInt128)(ulong)d.Length)
                r.Truncated = $"BMP pixel data needs {needed} bytes but the file has {d.Length}";
        }
        else if (imageSize > 0 && offBits + imageSize > d.Length)
        {
            // Compressed (RLE): the header's biSizeImage is the compressed size.
            r.Truncated = $"BMP compressed pixel data needs {offBits + imageSize} bytes but the file has {d.Length}";
        }
    }
}
