using TorchSharp;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

/// <summary>The activations transformers' ACT2FN offers that CLIP checkpoints use.</summary>
public static class ClipActivation
{
    private static readonly Scalar QuickGeluScale = 1.702.ToScalar();

    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "quick_gelu" => QuickGelu,
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new FormatException($"unsupported hidden_act '{name}' (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"),
    };

    /// <summary>
    /// x·σ(1.702x), bit for bit as written so, with its intermediates freed at once (the MLP's widest tensors: left to the
    /// caller's dispose scope they held about 1 GB per ViT-B/32 scoring pass of 64 views). Where nothing records a
    /// gradient through x, the gate is computed and multiplied in place: one allocation instead of three.
    /// </summary>
    private static Tensor QuickGelu(Tensor x)
    {
        if (!is_grad_enabled() || !x.requires_grad)
        {
            var gate = x.mul(QuickGeluScale);
            gate.sigmoid_();
            return gate.mul_(x);
        }
        using var scaled = x.mul(QuickGeluScale);
        using var sigma = scaled.sigmoid();
        return x.mul(sigma);
    }
}
