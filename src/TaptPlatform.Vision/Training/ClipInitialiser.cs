using TorchSharp;
using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Training;

/// <summary>
/// transformers' <c>CLIPPreTrainedModel._init_weights</c> (initializer_range 0.02, initializer_factor 1):
/// normal weights with CLIP's per-module standard deviations, zero biases, LayerNorm weight 1 / bias 0,
/// logit_scale = logit_scale_init_value. Every parameter must be matched by name. Draws come from
/// the <c>generator</c> when given (so concurrent users of torch's global generator cannot
/// change the result), else from the global generator.
/// </summary>
public static class ClipInitialiser
{
    public const double InitializerRange = 0.02;

    public static void Initialise(ClipModel model, double factor = 1.0, Generator? generator = null)
    {
        var c = model.Config;
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            var tower = name.StartsWith("text_model.", StringComparison.Ordinal) ? "text"
                : name.StartsWith("vision_model.", StringComparison.Ordinal) ? "vision" : "";
            var (width, layers) = tower == "text" ? (c.Text.HiddenSize, c.Text.NumHiddenLayers) : (c.Vision.HiddenSize, c.Vision.NumHiddenLayers);
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            var module = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
            var moduleLeaf = module[(module.LastIndexOf('.') + 1)..];
            double? std = null;
            if (name == "logit_scale") { using var init = c.LogitScaleInitValue.ToScalar(); p.fill_(init); continue; }
            if (IsLayerNorm(moduleLeaf))
            {
                if (leaf == "weight") p.fill_(One);
                else p.zero_();
                continue;
            }
            if (leaf == "bias") { p.zero_(); continue; }
            if (name == "text_projection.weight") std = Math.Pow(c.Text.HiddenSize, -0.5) * factor;
            else if (name == "visual_projection.weight") std = Math.Pow(c.Vision.HiddenSize, -0.5) * factor;
            else if (name == "vision_model.embeddings.class_embedding") std = Math.Pow(width, -0.5) * factor;
            else if (moduleLeaf is "patch_embedding" or "position_embedding" or "token_embedding") std = InitializerRange * factor;
            else if (moduleLeaf is "q_proj" or "k_proj" or "v_proj") std = Math.Pow(width, -0.5) * Math.Pow(2.0 * layers, -0.5) * factor;
            else if (moduleLeaf == "out_proj") std = Math.Pow(width, -0.5) * factor;
            else if (moduleLeaf == "fc1") std = Math.Pow(2.0 * width, -0.5) * factor;
            else if (moduleLeaf == "fc2") std = Math.Pow(width, -0.5) * Math.Pow(2.0 * layers, -0.5) * factor;
            if (std is null) throw new InvalidOperationException($"no initialisation rule for parameter {name}");
            p.normal_(0, std.Value, generator);
        }
    }

    private static bool IsLayerNorm(string moduleLeaf) =>
        moduleLeaf is "layer_norm1" or "layer_norm2" or "pre_layrnorm" or "post_layernorm" or "final_layer_norm";
}
