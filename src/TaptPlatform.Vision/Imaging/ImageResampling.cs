namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// The resampling filter of the resize step, as <c>resample</c> in <c>preprocessor_config.json</c> names it (PIL's codes).
/// A model should be served with the filter it was trained with: CLIP's checkpoints say bicubic (3), our Fashion-MNIST
/// model was trained on bilinear upsampling (2).
/// </summary>
public enum ImageResampling
{
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
}
