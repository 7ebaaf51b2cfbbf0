namespace TaptPlatform.Vision.Imaging;

/// <summary>Why an untrusted image was refused.</summary>
public enum ImageRejectionReason
{
    /// <summary>Zero bytes.</summary>
    Empty,
    /// <summary>Encoded size above <see cref="ImageLimits.MaxBytes"/>.</summary>
    TooManyBytes,
    /// <summary>Not PNG, JPEG, WebP, BMP or GIF (by content).</summary>
    UnknownFormat,
    /// <summary>Declared width*height (of the image or of a GIF frame) above <see cref="ImageLimits.MaxPixels"/>.</summary>
    TooManyPixels,
    /// <summary>A zero (or negative) width or height.</summary>
    InvalidDimensions,
    /// <summary>More animation frames than <see cref="ImageLimits.MaxFrames"/>.</summary>
    TooManyFrames,
    /// <summary>The file's structure or compressed data is invalid.</summary>
    Corrupt,
    /// <summary>The file ends before its structure says it should.</summary>
    Truncated,
    /// <summary>So elongated that resizing its shorter side to the model size would exceed <see cref="ImageLimits.MaxPixels"/>.</summary>
    ExtremeAspectRatio,
    /// <summary>A valid file using a feature the decoder does not implement (e.g. arithmetic-coded JPEG, animated WebP).</summary>
    Unsupported,
    /// <summary>The decoder asked for a buffer above the per-allocation memory limit.</summary>
    AllocationLimitExceeded,
}

/// <summary>The one exception the image pipeline throws for bad input; <see cref="Reason"/> says which check failed.</summary>
public sealed class ImageRejectedException : Exception
{
    public ImageRejectedException(ImageRejectionReason reason, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    public ImageRejectionReason Reason { get; }
}
