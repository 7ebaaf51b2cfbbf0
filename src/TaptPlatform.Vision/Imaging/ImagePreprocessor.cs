using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Transforms;
using TorchSharp;

namespace TaptPlatform.Vision.Imaging;

/// <summary>
/// The front door for untrusted images: validates and decodes PNG/JPEG/WebP/BMP/GIF (first frame only) with
/// ImageSharp, converts to RGB, resizes the shorter side to <see cref="ImagePreprocessorOptions.ShortestEdge"/> with
/// bicubic resampling, centre-crops to the crop size (Hugging Face <c>CLIPImageProcessor</c> geometry), and returns
/// CHW float32 in [0,1] (pixel/255; mean/std normalisation is the model's job).
/// <para>Alpha is <b>dropped</b>, not composited: the stored RGB of every pixel is kept whatever its opacity, which is
/// what PIL's <c>convert("RGB")</c> (and so the HF processor) does. EXIF orientation is not applied (HF does not either).</para>
/// <para>Every method is thread-safe; at most <see cref="Environment.ProcessorCount"/> decodes run at once
/// process-wide, so peak memory is bounded by that many times the per-image limits.</para>
/// </summary>
public sealed class ImagePreprocessor
{
    private static readonly SemaphoreSlim Gate = new(Environment.ProcessorCount, Environment.ProcessorCount);

    /// <summary>byte -> float32(byte * (1/255 in double)), the exact value HF's rescale produces.</summary>
    private static readonly float[] UnitScale = CreateUnitScale();

    private readonly ImageLimits _limits;
    private readonly Configuration _config;
    private readonly IResampler _resampler;

    public ImagePreprocessor(ImagePreprocessorOptions options, ImageLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _limits = limits ?? ImageLimits.Default;
        _limits.Validate();
        Options = options;
        _config = DecoderConfiguration.For(_limits);
        _resampler = options.Resampling switch
        {
            ImageResampling.Nearest => KnownResamplers.NearestNeighbor,
            ImageResampling.Bilinear => KnownResamplers.Triangle,
            ImageResampling.Lanczos => KnownResamplers.Lanczos3,
            ImageResampling.Box => KnownResamplers.Box,
            _ => KnownResamplers.Bicubic,
        };
    }

    public ImagePreprocessorOptions Options { get; }

    public ImageLimits Limits => _limits;

    /// <summary>Length of one output: 3 * CropHeight * CropWidth.</summary>
    public int OutputLength => 3 * Options.CropHeight * Options.CropWidth;

    /// <summary>Decodes an untrusted encoded image (format detected by content) to 3*H*W CHW floats in [0,1].</summary>
    /// <exception cref="ImageRejectedException">The input failed a check; <see cref="ImageRejectedException.Reason"/> says which.</exception>
    public float[] Load(ReadOnlySpan<byte> encoded)
    {
        var probe = ImageProbe.Probe(encoded, _limits, _config);
        CheckResizeBudget(probe.Info.Width, probe.Info.Height); // before paying for the decode
        Gate.Wait();
        try
        {
            using var image = Decode(encoded, probe);
            return Process(image, ownsImage: true);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Reads and decodes a file. The size limit is checked before the file is read; the extension is ignored.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public float[] LoadFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: {path}", path);
        return Load(ReadBounded(path, _limits.MaxBytes));
    }

    /// <summary>Resizes and crops an already-decoded image (not modified, not disposed).</summary>
    public float[] FromRgb(Image<Rgb24> image)
    {
        ArgumentNullException.ThrowIfNull(image);
        CheckDecodedSize(image.Width, image.Height);
        Gate.Wait();
        try
        {
            return Process(image, ownsImage: false);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>8-bit grayscale, row-major (e.g. Fashion-MNIST 28x28): replicated to RGB, then resized and cropped.</summary>
    public float[] FromGray(ReadOnlySpan<byte> pixels, int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new ImageRejectedException(ImageRejectionReason.InvalidDimensions, $"grayscale image has invalid dimensions {width}x{height}");
        if ((long)width * height != pixels.Length)
            throw new ArgumentException($"{width}x{height} needs {(long)width * height} bytes but {pixels.Length} were given", nameof(pixels));
        CheckDecodedSize(width, height);
        Gate.Wait();
        try
        {
            using var gray = Image.LoadPixelData<L8>(_config, pixels, width, height);
            using var image = gray.CloneAs<Rgb24>(_config); // L8 -> Rgb24 replicates the value into R, G and B
            return Process(image, ownsImage: true);
        }
        catch (Exception e) when (e is not (ImageRejectedException or OutOfMemoryException or ArgumentException))
        {
            throw ImageProbe.Classify(e, "grayscale", null);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Stacks outputs of this preprocessor into a [N,3,H,W] float32 CPU tensor (the caller disposes it).</summary>
    public torch.Tensor ToTensor(IReadOnlyList<float[]> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var per = OutputLength;
        var total = (long)images.Count * per;
        if (total > Array.MaxLength)
            throw new ArgumentException($"{images.Count} images of {per} floats do not fit in one tensor buffer", nameof(images));
        var data = new float[total];
        for (var i = 0; i < images.Count; i++)
        {
            var img = images[i] ?? throw new ArgumentException($"image {i} is null", nameof(images));
            if (img.Length != per)
                throw new ArgumentException(
                    $"image {i} has {img.Length} values; expected 3x{Options.CropHeight}x{Options.CropWidth} = {per}", nameof(images));
            img.CopyTo(data, (long)i * per);
        }
        return torch.tensor(data, new long[] { images.Count, 3, Options.CropHeight, Options.CropWidth },
            dtype: torch.ScalarType.Float32, device: torch.CPU);
    }

    // ---- internals -----------------------------------------------------------------------------------------

    private Image<Rgb24> Decode(ReadOnlySpan<byte> encoded, ImageProbe.ProbeResult probe)
    {
        Image<Rgb24> image;
        try
        {
            var decoder = _config.ImageFormatsManager.FindDecoder(probe.Format);
            image = Image.Load<Rgb24>(_config, encoded, decoder);
        }
        catch (Exception e) when (e is not (ImageRejectedException or OutOfMemoryException))
        {
            throw ImageProbe.Classify(e, probe.Info.Format, probe.Scan);
        }
        if (image.Width != probe.Info.Width || image.Height != probe.Info.Height)
        {
            var (w, h) = (image.Width, image.Height);
            image.Dispose();
            throw new ImageRejectedException(ImageRejectionReason.Corrupt,
                $"image is corrupt: {probe.Info.Format} header says {probe.Info.Width}x{probe.Info.Height} but decoded {w}x{h}");
        }
        return image;
    }

    private void CheckDecodedSize(int width, int height)
    {
        if (width <= 0 || height <= 0)
            throw new ImageRejectedException(ImageRejectionReason.InvalidDimensions, $"image has invalid dimensions {width}x{height}");
        if ((long)width * height > _limits.MaxPixels)
            throw new ImageRejectedException(ImageRejectionReason.TooManyPixels,
                $"image is {width}x{height} = {ImageProbe.Megapixels((long)width * height)} MP, above the {ImageProbe.Megapixels(_limits.MaxPixels)} MP limit");
    }

    /// <summary>
    /// HF <c>get_resize_output_image_size(default_to_square=False)</c>: the shorter side becomes
    /// <paramref name="shortestEdge"/>, the longer one <c>int(shortestEdge * long / short)</c> (truncated);
    /// unchanged if the shorter side already matches.
    /// </summary>
    internal static (int Width, int Height) ResizedSize(int width, int height, int shortestEdge)
    {
        var (shortSide, longSide) = width <= height ? (width, height) : (height, width);
        if (shortSide == shortestEdge) return (width, height);
        var newLong = (double)shortestEdge * longSide / shortSide;
        var newLongInt = newLong >= int.MaxValue ? int.MaxValue : (int)newLong;
        return width <= height ? (shortestEdge, newLongInt) : (newLongInt, shortestEdge);
    }

    /// <summary>The resized intermediate is bounded by <see cref="ImageLimits.MaxPixels"/> too: a 40000x1 strip
    /// would otherwise become 224 x 8.96 million.</summary>
    private (int Width, int Height) CheckResizeBudget(int width, int height)
    {
        var (newW, newH) = ResizedSize(width, height, Options.ShortestEdge);
        if ((long)newW * newH > _limits.MaxPixels)
            throw new ImageRejectedException(ImageRejectionReason.ExtremeAspectRatio,
                $"image is {width}x{height}; resizing its shorter side to {Options.ShortestEdge} gives {newW}x{newH} = " +
                $"{ImageProbe.Megapixels((long)newW * newH)} MP, above the {ImageProbe.Megapixels(_limits.MaxPixels)} MP limit");
        return (newW, newH);
    }

    /// <summary>Resize (shorter side, the configured filter), centre crop (HF semantics incl. zero padding), to CHW [0,1].</summary>
    private float[] Process(Image<Rgb24> image, bool ownsImage)
    {
        var (newW, newH) = CheckResizeBudget(image.Width, image.Height);
        if (newW == image.Width && newH == image.Height) return CropToChw(image);
        try
        {
            if (ownsImage)
            {
                image.Mutate(ctx => ctx.Resize(newW, newH, _resampler));
                return CropToChw(image);
            }
            using var resized = image.Clone(_config, ctx => ctx.Resize(newW, newH, _resampler));
            return CropToChw(resized);
        }
        catch (Exception e) when (e is not (ImageRejectedException or OutOfMemoryException))
        {
            throw ImageProbe.Classify(e, "resize", null);
        }
    }

    /// <summary>
    /// HF <c>center_crop</c>: top = (h - ch) // 2, left = (w - cw) // 2; if the crop is larger than the image on an
    /// axis, the image is placed at ceil((c - n) / 2) on a zero canvas.
    /// </summary>
    private float[] CropToChw(Image<Rgb24> image)
    {
        int ch = Options.CropHeight, cw = Options.CropWidth, w = image.Width, h = image.Height;
        var (srcTop, dstTop, rows) = Axis(h, ch);
        var (srcLeft, dstLeft, cols) = Axis(w, cw);
        var plane = ch * cw;
        var output = new float[3 * plane];
        var scale = UnitScale;
        image.ProcessPixelRows(accessor =>
        {
            for (var y = 0; y < rows; y++)
            {
                var row = accessor.GetRowSpan(srcTop + y).Slice(srcLeft, cols);
                var o = (dstTop + y) * cw + dstLeft;
                for (var x = 0; x < cols; x++)
                {
                    var p = row[x];
                    output[o + x] = scale[p.R];
                    output[plane + o + x] = scale[p.G];
                    output[2 * plane + o + x] = scale[p.B];
                }
            }
        });
        return output;
    }

    private static (int SrcStart, int DstStart, int Count) Axis(int size, int crop) =>
        size >= crop ? ((size - crop) / 2, 0, crop) : (0, (crop - size + 1) / 2, size);

    private static float[] CreateUnitScale()
    {
        var t = new float[256];
        for (var i = 0; i < 256; i++) t[i] = (float)(i * (1.0 / 255.0));
        return t;
    }

    /// <summary>Reads at most <paramref name="maxBytes"/>; the declared length is checked before any read, and a
    /// file that grows (or a device with no length) is still cut off one byte past the limit.</summary>
    private static byte[] ReadBounded(string path, long maxBytes)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        long declared = -1;
        if (fs.CanSeek)
        {
            declared = fs.Length;
            if (declared > maxBytes)
                throw new ImageRejectedException(ImageRejectionReason.TooManyBytes,
                    $"image file is {ImageProbe.FormatBytes(declared)}, above the {ImageProbe.FormatBytes(maxBytes)} limit");
        }
        var cap = (int)Math.Min(maxBytes + 1, Array.MaxLength);
        var buffer = new byte[declared >= 0 ? Math.Min(declared + 1, cap) : Math.Min(cap, 64 * 1024)];
        var n = 0;
        while (true)
        {
            if (n == buffer.Length)
            {
                if (buffer.Length >= cap) break;
                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, cap));
            }
            var read = fs.Read(buffer, n, buffer.Length - n);
            if (read == 0) break;
            n += read;
        }
        if (n > maxBytes)
            throw new ImageRejectedException(ImageRejectionReason.TooManyBytes,
                $"image file is more than {ImageProbe.FormatBytes(maxBytes)}, the limit");
        return n == buffer.Length ? buffer : buffer[..n];
    }
}
