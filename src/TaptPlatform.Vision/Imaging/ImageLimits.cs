namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// Resource limits applied to untrusted encoded images before and during decoding.
/// </summary>
/// <param name="MaxBytes">Largest accepted encoded size in bytes (default 20 MiB).</param>
/// <param name="MaxPixels">Largest accepted width*height, for the image and for any GIF frame (default 40 megapixels).
/// Also bounds the resized intermediate, and sets the decoder's per-allocation memory limit.</param>
/// <param name="MaxFrames">Largest accepted number of frames in an animated GIF or WebP (default 1000).
/// Only the first frame is ever decoded.</param>
/// <param name="MaxAspectRatio">Largest accepted ratio of the longer side to the shorter (default: none). The
/// preprocessor checks the size the image grows to when resized for its model; uploads, checked before any model is
/// chosen, use <see cref="Upload"/>'s model-agnostic bound instead.</param>
public sealed record ImageLimits(long MaxBytes = 20 * 1024 * 1024, long MaxPixels = 40_000_000, int MaxFrames = 1000, int MaxAspectRatio = int.MaxValue)
{
    public static ImageLimits Default { get; } = new();

    /// <summary>
    /// The limits an upload is accepted under: the defaults, and one side at most 100 times the other, since resizing
    /// the shorter side to a model's input would otherwise blow the longer one past <see cref="MaxPixels"/> in the engine.
    /// </summary>
    public static ImageLimits Upload { get; } = new(MaxAspectRatio: 100);

    /// <summary>
    /// The largest single buffer ImageSharp may allocate while decoding/resizing under these limits, in MiB.
    /// The widest decoder (WebP) needs 4 bytes per pixel; 25 % plus 16 MiB headroom is added.
    /// </summary>
    internal int AllocationLimitMegabytes
    {
        get
        {
            var bytes = (double)MaxPixels * 4 * 1.25 + 16 * 1024 * 1024;
            return (int)Math.Min(int.MaxValue, Math.Ceiling(bytes / (1024 * 1024)));
        }
    }

    internal void Validate()
    {
        if (MaxBytes <= 0) throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "MaxBytes must be positive");
        if (MaxPixels <= 0) throw new ArgumentOutOfRangeException(nameof(MaxPixels), MaxPixels, "MaxPixels must be positive");
        if (MaxFrames <= 0) throw new ArgumentOutOfRangeException(nameof(MaxFrames), MaxFrames, "MaxFrames must be positive");
        if (MaxAspectRatio < 1) throw new ArgumentOutOfRangeException(nameof(MaxAspectRatio), MaxAspectRatio, "MaxAspectRatio must be at least 1");
    }
}
