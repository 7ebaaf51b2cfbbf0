using System.Collections.Concurrent;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;

namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// The hardened ImageSharp <see cref="Configuration"/> shared by every decode under a given <see cref="ImageLimits"/>.
/// <list type="bullet">
/// <item>Only PNG, JPEG, GIF, BMP and WebP are registered (no TIFF/TGA/PBM attack surface).</item>
/// <item>The memory allocator has a per-allocation cap derived from <see cref="ImageLimits.MaxPixels"/>.</item>
/// <item>All decoders ignore metadata: ImageSharp 2.1 otherwise inflates PNG zTXt/iTXt/iCCP chunks without a bound
/// (a 400 KB chunk becomes gigabytes), and EXIF/ICC/XMP are not needed for pixels.</item>
/// <item>GIF decodes only the first frame (<see cref="FrameDecodingMode.First"/>), so frame bombs cost nothing.</item>
/// </list>
/// Configurations and decoders are immutable after construction and safe to share between threads.
/// </summary>
internal static class DecoderConfiguration
{
    private static readonly ConcurrentDictionary<ImageLimits, Configuration> Cache = new();

    public static Configuration For(ImageLimits limits) => Cache.GetOrAdd(limits, Create);

    private static Configuration Create(ImageLimits limits)
    {
        var config = new Configuration(
            new PngConfigurationModule(),
            new JpegConfigurationModule(),
            new GifConfigurationModule(),
            new BmpConfigurationModule(),
            new WebpConfigurationModule())
        {
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions
            {
                AllocationLimitMegabytes = limits.AllocationLimitMegabytes,
            }),
        };
        var formats = config.ImageFormatsManager;
        formats.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        formats.SetDecoder(JpegFormat.Instance, new JpegDecoder { IgnoreMetadata = true });
        formats.SetDecoder(WebpFormat.Instance, new WebpDecoder { IgnoreMetadata = true });
        formats.SetDecoder(BmpFormat.Instance, new BmpDecoder());
        formats.SetDecoder(GifFormat.Instance, new GifDecoder
        {
            IgnoreMetadata = true,
            DecodingMode = FrameDecodingMode.First,
            MaxFrames = (uint)limits.MaxFrames,
        });
        return config;
    }

    /// <summary>Canonical upper-case name used in <see cref="ImageInfo.Format"/>.</summary>
    public static string CanonicalName(IImageFormat format) => format switch
    {
        PngFormat => "PNG",
        JpegFormat => "JPEG",
        GifFormat => "GIF",
        BmpFormat => "BMP",
        WebpFormat => "WEBP",
        _ => format.Name.ToUpperInvariant(),
    };
}
