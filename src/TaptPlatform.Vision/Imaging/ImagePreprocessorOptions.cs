namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// CLIP image-processor geometry: resize the shorter side to <paramref name="ShortestEdge"/> (aspect kept) with
/// <paramref name="Resampling"/>, then centre-crop to <paramref name="CropHeight"/> x <paramref name="CropWidth"/>
/// (<c>size.shortest_edge</c>, <c>resample</c> and <c>crop_size</c> in <c>preprocessor_config.json</c>, or the model's <c>image_size</c>).
/// </summary>
public sealed record ImagePreprocessorOptions(int ShortestEdge, int CropHeight, int CropWidth, ImageResampling Resampling = ImageResampling.Bicubic)
{
    /// <summary>The usual CLIP setting: shortest edge = crop = <paramref name="imageSize"/>.</summary>
    public static ImagePreprocessorOptions ForImageSize(int imageSize) => new(imageSize, imageSize, imageSize);

    internal void Validate()
    {
        if (ShortestEdge <= 0) throw new ArgumentOutOfRangeException(nameof(ShortestEdge), ShortestEdge, "ShortestEdge must be positive");
        if (CropHeight <= 0) throw new ArgumentOutOfRangeException(nameof(CropHeight), CropHeight, "CropHeight must be positive");
        if (CropWidth <= 0) throw new ArgumentOutOfRangeException(nameof(CropWidth), CropWidth, "CropWidth must be positive");
        if ((long)CropHeight * CropWidth * 3 > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(CropHeight), $"crop {CropHeight}x{CropWidth} is too large for one array");
        if (!Enum.IsDefined(Resampling)) throw new ArgumentOutOfRangeException(nameof(Resampling), Resampling, "unknown resampling filter");
    }
}
