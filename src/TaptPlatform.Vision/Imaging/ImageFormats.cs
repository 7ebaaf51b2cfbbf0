namespace TaptPlatform.Vision.Imaging;

/// <summary>The image formats the pipeline accepts, named as <see cref="ImageInfo.Format"/> names them.</summary>
public static class ImageFormats
{
    /// <summary>The media type of a format ("PNG" → image/png); application/octet-stream for anything else.</summary>
    public static string ContentType(string format) => format.ToUpperInvariant() switch
    {
        "PNG" => "image/png",
        "JPEG" => "image/jpeg",
        "WEBP" => "image/webp",
        "BMP" => "image/bmp",
        "GIF" => "image/gif",
        _ => "application/octet-stream",
    };
}
