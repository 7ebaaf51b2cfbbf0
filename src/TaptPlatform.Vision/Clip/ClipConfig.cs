using System.Text.Json;
using System.Text.Json.Nodes;

namespace TaptPlatform.Vision.Clip;

/// <summary>Text tower settings, named and defaulted as transformers' <c>CLIPTextConfig</c>.</summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public int BosTokenId { get; init; } = 49406;
    public int EosTokenId { get; init; } = 49407;
    public int PadTokenId { get; init; } = 1;
}

/// <summary>Vision tower settings, named and defaulted as transformers' <c>CLIPVisionConfig</c>.</summary>
public sealed record ClipVisionConfig
{
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int NumChannels { get; init; } = 3;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 32;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;

    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);
    public int NumPositions => NumPatches + 1;
}

/// <summary>A Hugging Face <c>CLIPConfig</c> (config.json of a CLIPModel checkpoint).</summary>
public sealed record ClipConfig
{
    public ClipTextConfig Text { get; init; } = new();
    public ClipVisionConfig Vision { get; init; } = new();
    public int ProjectionDim { get; init; } = 512;
    public double LogitScaleInitValue { get; init; } = 2.6592;

    public static ClipConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ClipCheckpointException($"config.json not found: {path}");
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ClipCheckpointException($"{path}: not a valid CLIP config ({e.Message})", e);
        }
    }

    public static ClipConfig Parse(string json)
    {
        var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("config.json is not a JSON object");
        if (root["model_type"] is JsonNode mt && mt.GetValue<string>() is var modelType && modelType != "clip")
            throw new FormatException($"model_type is '{modelType}', expected 'clip'");
        // Old checkpoints carry *_config_dict next to (or instead of) *_config.
        var text = (root["text_config"] ?? root["text_config_dict"]) as JsonObject ?? new JsonObject();
        var vision = (root["vision_config"] ?? root["vision_config_dict"]) as JsonObject ?? new JsonObject();
        var t = new ClipTextConfig();
        t = t with
        {
            VocabSize = Int(text, "vocab_size", t.VocabSize),
            HiddenSize = Int(text, "hidden_size", t.HiddenSize),
            IntermediateSize = Int(text, "intermediate_size", t.IntermediateSize),
            NumHiddenLayers = Int(text, "num_hidden_layers", t.NumHiddenLayers),
            NumAttentionHeads = Int(text, "num_attention_heads", t.NumAttentionHeads),
            MaxPositionEmbeddings = Int(text, "max_position_embeddings", t.MaxPositionEmbeddings),
            HiddenAct = Str(text, "hidden_act", t.HiddenAct),
            LayerNormEps = Dbl(text, "layer_norm_eps", t.LayerNormEps),
            BosTokenId = Int(text, "bos_token_id", t.BosTokenId),
            EosTokenId = Int(text, "eos_token_id", t.EosTokenId),
            PadTokenId = Int(text, "pad_token_id", t.PadTokenId),
        };
        var v = new ClipVisionConfig();
        v = v with
        {
            HiddenSize = Int(vision, "hidden_size", v.HiddenSize),
            IntermediateSize = Int(vision, "intermediate_size", v.IntermediateSize),
            NumHiddenLayers = Int(vision, "num_hidden_layers", v.NumHiddenLayers),
            NumAttentionHeads = Int(vision, "num_attention_heads", v.NumAttentionHeads),
            NumChannels = Int(vision, "num_channels", v.NumChannels),
            ImageSize = Int(vision, "image_size", v.ImageSize),
            PatchSize = Int(vision, "patch_size", v.PatchSize),
            HiddenAct = Str(vision, "hidden_act", v.HiddenAct),
            LayerNormEps = Dbl(vision, "layer_norm_eps", v.LayerNormEps),
        };
        var config = new ClipConfig
        {
            Text = t,
            Vision = v,
            ProjectionDim = Int(root, "projection_dim", 512),
            LogitScaleInitValue = Dbl(root, "logit_scale_init_value", 2.6592),
        };
        config.Validate();
        return config;
    }

    public void Validate()
    {
        Check(Text.HiddenSize % Text.NumAttentionHeads == 0, $"text hidden_size {Text.HiddenSize} is not divisible by num_attention_heads {Text.NumAttentionHeads}");
        Check(Vision.HiddenSize % Vision.NumAttentionHeads == 0, $"vision hidden_size {Vision.HiddenSize} is not divisible by num_attention_heads {Vision.NumAttentionHeads}");
        Check(Vision.PatchSize > 0 && Vision.ImageSize % Vision.PatchSize == 0, $"vision image_size {Vision.ImageSize} is not a multiple of patch_size {Vision.PatchSize}");
        Check(Text.VocabSize > 0 && Text.MaxPositionEmbeddings > 1 && ProjectionDim > 0, "vocab_size, max_position_embeddings and projection_dim must be positive");
        ClipActivation.Get(Text.HiddenAct);
        ClipActivation.Get(Vision.HiddenAct);
    }

    /// <summary>Writes config.json the way transformers does (the fields it reads back).</summary>
    public string ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"),
            ["model_type"] = "clip",
            ["projection_dim"] = ProjectionDim,
            ["logit_scale_init_value"] = LogitScaleInitValue,
            ["torch_dtype"] = "float32",
            ["text_config"] = new JsonObject
            {
                ["model_type"] = "clip_text_model",
                ["vocab_size"] = Text.VocabSize,
                ["hidden_size"] = Text.HiddenSize,
                ["intermediate_size"] = Text.IntermediateSize,
                ["num_hidden_layers"] = Text.NumHiddenLayers,
                ["num_attention_heads"] = Text.NumAttentionHeads,
                ["max_position_embeddings"] = Text.MaxPositionEmbeddings,
                ["hidden_act"] = Text.HiddenAct,
                ["layer_norm_eps"] = Text.LayerNormEps,
                ["bos_token_id"] = Text.BosTokenId,
                ["eos_token_id"] = Text.EosTokenId,
                ["pad_token_id"] = Text.PadTokenId,
                ["projection_dim"] = ProjectionDim,
            },
            ["vision_config"] = new JsonObject
            {
                ["model_type"] = "clip_vision_model",
                ["hidden_size"] = Vision.HiddenSize,
                ["intermediate_size"] = Vision.IntermediateSize,
                ["num_hidden_layers"] = Vision.NumHiddenLayers,
                ["num_attention_heads"] = Vision.NumAttentionHeads,
                ["num_channels"] = Vision.NumChannels,
                ["image_size"] = Vision.ImageSize,
                ["patch_size"] = Vision.PatchSize,
                ["hidden_act"] = Vision.HiddenAct,
                ["layer_norm_eps"] = Vision.LayerNormEps,
                ["projection_dim"] = ProjectionDim,
            },
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static void Check(bool ok, string message)
    {
        if (!ok) throw new FormatException(message);
    }

    private static int Int(JsonObject o, string key, int fallback) =>
        o[key] is JsonValue v ? v.GetValue<int>() : fallback;

    private static double Dbl(JsonObject o, string key, double fallback) =>
        o[key] is JsonValue v ? v.GetValue<double>() : fallback;

    private static string Str(JsonObject o, string key, string fallback) =>
        o[key] is JsonValue v ? v.GetValue<string>() : fallback;
}
