using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

#pragma warning disable IDE1006 // snake_case fields are the checkpoint's parameter names

/// <summary>
/// transformers' <c>CLIPModel</c>: both towers, their projections and the logit scale. Images enter
/// in [0,1] pixel space; mean/std normalisation happens here so attacks and ε live in pixel space.
/// </summary>
public sealed class ClipModel : nn.Module
{
    private readonly ClipTextTransformer text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection, text_projection;
    private readonly Parameter logit_scale;
    private float[] _mean = [0.48145466f, 0.4578275f, 0.40821073f];
    private float[] _std = [0.26862954f, 0.26130258f, 0.27577711f];

    public ClipModel(ClipConfig config) : base(nameof(ClipModel))
    {
        Config = config;
        text_model = new ClipTextTransformer(config.Text);
        vision_model = new ClipVisionTransformer(config.Vision);
        visual_projection = nn.Linear(config.Vision.HiddenSize, config.ProjectionDim, hasBias: false);
        text_projection = nn.Linear(config.Text.HiddenSize, config.ProjectionDim, hasBias: false);
        logit_scale = nn.Parameter(tensor((float)config.LogitScaleInitValue));
        RegisterComponents();
    }

    public ClipConfig Config { get; }
    public ClipTextTransformer TextModel => text_model;
    public ClipVisionTransformer VisionModel => vision_model;
    public Tensor LogitScale => logit_scale;
    public IReadOnlyList<float> ImageMean => _mean;
    public IReadOnlyList<float> ImageStd => _std;

    public void SetNormalisation(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        if (mean.Count != Config.Vision.NumChannels || std.Count != Config.Vision.NumChannels)
            throw new ArgumentException($"image mean/std need {Config.Vision.NumChannels} values");
        if (std.Any(s => s <= 0)) throw new ArgumentException("image std must be positive");
        _mean = [.. mean];
        _std = [.. std];
    }

    /// <summary>
    /// A frozen, eval-mode copy of the weights in <paramref name="dtype"/> on <paramref name="device"/> (the bf16 scoring
    /// pass's model). Inputs and prompt tokens must be cast to the same dtype.
    /// </summary>
    public ClipModel CopyAs(ScalarType dtype, Device device)
    {
        var copy = new ClipModel(Config);
        copy.SetNormalisation(_mean, _std);
        using (no_grad())
        {
            var source = state_dict();
            foreach (var (name, parameter) in copy.named_parameters())
                parameter.copy_(source[name]);
        }
        copy.to(dtype);
        if (device.type != DeviceType.CPU) copy.to(device);
        foreach (var parameter in copy.parameters()) parameter.requires_grad = false;
        copy.eval();
        return copy;
    }

    /// <summary>(x − mean) / std on [B, C, H, W] pixels in [0,1].</summary>
    public Tensor Normalise(Tensor pixels01)
    {
        var c = Config.Vision;
        if (pixels01.dim() != 4 || pixels01.shape[1] != c.NumChannels || pixels01.shape[2] != c.ImageSize || pixels01.shape[3] != c.ImageSize)
            throw new ArgumentException($"expected images of shape [B, {c.NumChannels}, {c.ImageSize}, {c.ImageSize}], got [{string.Join(", ", pixels01.shape)}]");
        using var mean = tensor(_mean, dtype: pixels01.dtype, device: pixels01.device).view(1, -1, 1, 1);
        using var std = tensor(_std, dtype: pixels01.dtype, device: pixels01.device).view(1, -1, 1, 1);
        using var centred = pixels01 - mean;
        return centred / std;
    }

    /// <summary>Projected image features (not normalised) — <c>get_image_features</c>.</summary>
    public Tensor EncodeImage(Tensor pixels01, PromptTokens? prompts = null, IList<Tensor>? blockInputs = null, int captureLayers = int.MaxValue)
    {
        using var x = Normalise(pixels01);
        using var pooled = vision_model.Forward(x, prompts, blockInputs, captureLayers);
        return visual_projection.forward(pooled);
    }

    /// <summary>Pooled vision output before the projection (post_layernorm of the class token).</summary>
    public Tensor VisionPooled(Tensor pixels01)
    {
        using var x = Normalise(pixels01);
        return vision_model.Forward(x);
    }

    /// <summary>Projected text features (not normalised) — <c>get_text_features</c>.</summary>
    public Tensor EncodeText(Tensor ids, PromptTokens? prompts = null)
    {
        using var pooled = text_model.Forward(ids, prompts);
        return text_projection.forward(pooled);
    }

    public Tensor TextPooled(Tensor ids) => text_model.Forward(ids);

    /// <summary>exp(logit_scale) · cos(image, text): [images, texts].</summary>
    public Tensor Logits(Tensor imageFeatures, Tensor textFeatures)
    {
        using var i = nn.functional.normalize(imageFeatures, dim: -1);
        using var t = nn.functional.normalize(textFeatures, dim: -1);
        using var scale = logit_scale.exp();
        using var cos = i.matmul(t.t());
        return cos * scale;
    }
}
#pragma warning restore IDE1006
