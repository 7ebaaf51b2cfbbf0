using System.Globalization;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Memory;

namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// Every check that can be made on an untrusted image without decoding its pixels: byte size, format by content,
/// container structure (truncation, frame count), and declared dimensions. Thread-safe.
/// </summary>
public static class ImageProbe
{
    /// <summary>Identifies the image or throws <see cref="ImageRejectedException"/> naming the failed check.</summary>
    public static ImageInfo Identify(ReadOnlySpan<byte> encoded, ImageLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.Validate();
        return Probe(encoded, limits, DecoderConfiguration.For(limits)).Info;
    }

    /// <summary>
    /// The byte-size rule alone (the first check of <see cref="Identify"/>), for an image whose length is known before
    /// its bytes are read (a stored upload): throws <see cref="ImageRejectedException"/> when it is empty or too large.
    /// </summary>
    public static void CheckByteSize(long length, ImageLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (length <= 0)
            throw new ImageRejectedException(ImageRejectionReason.Empty, "image is empty (0 bytes)");
        if (length > limits.MaxBytes)
            throw new ImageRejectedException(ImageRejectionReason.TooManyBytes,
                $"image is {FormatBytes(length)}, above the {FormatBytes(limits.MaxBytes)} limit");
    }

    internal readonly record struct ProbeResult(ImageInfo Info, IImageFormat Format, ScanResult Scan);

    internal static ProbeResult Probe(ReadOnlySpan<byte> encoded, ImageLimits limits, Configuration config)
    {
        CheckByteSize(encoded.Length, limits);

        var format = Image.DetectFormat(config, encoded)
            ?? throw new ImageRejectedException(ImageRejectionReason.UnknownFormat,
                $"image format not recognised (first bytes {Convert.ToHexString(encoded[..Math.Min(8, encoded.Length)])}); supported: PNG, JPEG, WebP, BMP, GIF");
        var name = DecoderConfiguration.CanonicalName(format);

        // Structure first: linear in the input, no decoding, and the only place frames are counted.
        var scan = ContainerScanner.Scan(name, encoded, limits);
        if (scan.FrameCount > limits.MaxFrames)
            throw new ImageRejectedException(ImageRejectionReason.TooManyFrames,
                $"{name} has at least {scan.FrameCount} frames, above the {limits.MaxFrames} frame limit");
        if (scan.HeaderWidth is { } hw && scan.HeaderHeight is { } hh)
            CheckPixels(hw, hh, limits, name);
        if (scan.MaxFramePixels > limits.MaxPixels)
            throw new ImageRejectedException(ImageRejectionReason.TooManyPixels,
                $"{name} frame is {scan.MaxFrameSize} = {Megapixels(scan.MaxFramePixels)} MP, above the {Megapixels(limits.MaxPixels)} MP limit");

        IImageInfo? info;
        try
        {
            info = IdentifyCore(config, encoded);
        }
        catch (Exception e) when (e is not (ImageRejectedException or OutOfMemoryException))
        {
            if (scan.HeaderWidth == 0 || scan.HeaderHeight == 0)
                throw InvalidDimensions(name, scan.HeaderWidth ?? 0, scan.HeaderHeight ?? 0, e);
            throw Classify(e, name, scan);
        }
        if (info is null)
            throw new ImageRejectedException(scan.Truncated is null ? ImageRejectionReason.Corrupt : ImageRejectionReason.Truncated,
                scan.Truncated ?? $"{name} header could not be read");

        if (info.Width <= 0 || info.Height <= 0)
            throw InvalidDimensions(name, info.Width, info.Height, null);
        CheckPixels(info.Width, info.Height, limits, name);

        if (scan.Truncated is not null)
            throw new ImageRejectedException(ImageRejectionReason.Truncated, $"image is truncated: {scan.Truncated}");
        if (scan.Corrupt is not null)
            throw new ImageRejectedException(ImageRejectionReason.Corrupt, $"image is corrupt: {scan.Corrupt}");

        return new ProbeResult(new ImageInfo(name, info.Width, info.Height), format, scan);
    }

    private static unsafe IImageInfo? IdentifyCore(Configuration config, ReadOnlySpan<byte> encoded)
    {
        fixed (byte* p = encoded)
        {
            using var stream = new UnmanagedMemoryStream(p, encoded.Length);
            return Image.Identify(config, stream);
        }
    }

    private static void CheckPixels(long width, long height, ImageLimits limits, string name)
    {
        if (width > 0 && height > 0 && width * height > limits.MaxPixels)
            throw new ImageRejectedException(ImageRejectionReason.TooManyPixels,
                $"image is {width}x{height} = {Megapixels(width * height)} MP, above the {Megapixels(limits.MaxPixels)} MP limit ({name})");
        if (width > 0 && height > 0 && Math.Max(width, height) > (long)limits.MaxAspectRatio * Math.Min(width, height))
            throw new ImageRejectedException(ImageRejectionReason.ExtremeAspectRatio,
                $"image is {width}x{height}: one side is more than {limits.MaxAspectRatio} times the other ({name})");
    }

    private static ImageRejectedException InvalidDimensions(string name, long width, long height, Exception? inner) =>
        new(ImageRejectionReason.InvalidDimensions, $"{name} image has invalid dimensions {width}x{height}", inner);

    /// <summary>Maps an ImageSharp (or other decoder) exception to a rejection, preferring the scanner's view.</summary>
    internal static ImageRejectedException Classify(Exception e, string format, ScanResult? scan)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is InvalidMemoryOperationException)
                return new ImageRejectedException(ImageRejectionReason.AllocationLimitExceeded,
                    $"{format} decoding needed a buffer above the per-allocation memory limit: {x.Message}", e);
        }
        if (scan?.Truncated is { } t)
            return new ImageRejectedException(ImageRejectionReason.Truncated, $"image is truncated: {t}", e);
        if (scan?.Corrupt is { } c)
            return new ImageRejectedException(ImageRejectionReason.Corrupt, $"image is corrupt: {c}", e);
        return e switch
        {
            UnknownImageFormatException => new(ImageRejectionReason.UnknownFormat, $"image format not recognised: {e.Message}", e),
            NotSupportedException => new(ImageRejectionReason.Unsupported, $"{format} uses a feature the decoder does not support: {e.Message}", e),
            EndOfStreamException => new(ImageRejectionReason.Truncated, $"image is truncated: {format} data ended early", e),
            _ => new(ImageRejectionReason.Corrupt, $"image is corrupt: {format} decoder failed: {e.Message}", e),
        };
    }

    internal static string Megapixels(long pixels) => (pixels / 1e6).ToString("F1", CultureInfo.InvariantCulture);

    internal static string FormatBytes(long bytes) => bytes < 1024 * 1024
        ? $"{bytes} bytes"
        : $"{(bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture)} MiB ({bytes} bytes)";
}
