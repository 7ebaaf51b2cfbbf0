using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Clip;

/// <summary>The parts of transformers' <c>preprocessor_config.json</c> that CLIP uses.</summary>
public sealed record PreprocessorConfig(int ShortestEdge, int CropHeight, int CropWidth, float[] ImageMean, float[] ImageStd,
    ImageResampling Resampling = ImageResampling.Bicubic)
{
    /// <summary>The image pipeline's geometry and filter for this model.</summary>
    public ImagePreprocessorOptions ImageOptions => new(ShortestEdge, CropHeight, CropWidth, Resampling);

    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    /// <summary>CLIP's defaults for a model of the given input size.</summary>
    public static PreprocessorConfig Default(int imageSize) => new(imageSize, imageSize, imageSize, ClipMean, ClipStd);

    /// <summary>Reads the file if present; otherwise CLIP's defaults for the model's image size.</summary>
    public static PreprocessorConfig Load(string path, int imageSize)
    {
        if (!File.Exists(path)) return Default(imageSize);
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException("not a JSON object");
            var shortest = o["size"] switch
            {
                JsonValue v => v.GetValue<int>(),
                JsonObject s when s["shortest_edge"] is JsonValue e => e.GetValue<int>(),
                JsonObject s when s["height"] is JsonValue h => h.GetValue<int>(),
                _ => imageSize,
            };
            var (ch, cw) = o["crop_size"] switch
            {
                JsonValue v => (v.GetValue<int>(), v.GetValue<int>()),
                JsonObject s => (s["height"]?.GetValue<int>() ?? imageSize, s["width"]?.GetValue<int>() ?? imageSize),
                _ => (imageSize, imageSize),
            };
            var mean = o["image_mean"] is JsonArray m ? m.Select(x => x!.GetValue<float>()).ToArray() : ClipMean;
            var std = o["image_std"] is JsonArray s2 ? s2.Select(x => x!.GetValue<float>()).ToArray() : ClipStd;
            // transformers' CLIPImageProcessor defaults to bicubic; 5 (Hamming) has no ImageSharp counterpart.
            var resample = o["resample"] is JsonValue r ? r.GetValue<int>() : (int)ImageResampling.Bicubic;
            if (!Enum.IsDefined((ImageResampling)resample))
                throw new FormatException($"resample {resample} is not supported (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box)");
            if (ch != imageSize || cw != imageSize)
                throw new FormatException($"crop_size {ch}x{cw} differs from the model's image_size {imageSize}");
            if (shortest < ch || shortest < cw) throw new FormatException($"size {shortest} is smaller than the crop");
            if (mean.Length != 3 || std.Length != 3 || std.Any(x => x <= 0)) throw new FormatException("image_mean/image_std need 3 values, std positive");
            return new PreprocessorConfig(shortest, ch, cw, mean, std, (ImageResampling)resample);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ClipCheckpointException($"{path}: invalid preprocessor config ({e.Message})", e);
        }
    }

    public string ToJson() => new JsonObject
    {
        ["image_processor_type"] = "CLIPImageProcessor",
        ["do_resize"] = true,
        ["size"] = new JsonObject { ["shortest_edge"] = ShortestEdge },
        ["resample"] = (int)Resampling,
        ["do_center_crop"] = true,
        ["crop_size"] = new JsonObject { ["height"] = CropHeight, ["width"] = CropWidth },
        ["do_rescale"] = true,
        ["rescale_factor"] = 1.0 / 255,
        ["do_normalize"] = true,
        ["image_mean"] = new JsonArray(ImageMean.Select(x => (JsonNode)x).ToArray()),
        ["image_std"] = new JsonArray(ImageStd.Select(x => (JsonNode)x).ToArray()),
        ["do_convert_rgb"] = true,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
