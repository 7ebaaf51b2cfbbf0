namespace TaptPlatform.Vision.Imaging;

/// <summary>What <see cref="ImageProbe.Identify"/> learned from an image's headers without decoding pixels.</summary>
/// <param name="Format">Detected by content, never by file name: "PNG", "JPEG", "WEBP", "BMP" or "GIF".</param>
/// <param name="Width">Width in pixels (GIF: the logical screen).</param>
/// <param name="Height">Height in pixels.</param>
public sealed record ImageInfo(string Format, int Width, int Height);
