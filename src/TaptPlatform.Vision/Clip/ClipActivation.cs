using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

/// <summary>The activations transformers' ACT2FN offers that CLIP checkpoints use.</summary>
public static class ClipActivation
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        "quick_gelu" => x => x * sigmoid(x * 1.702),
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new FormatException($"unsupported hidden_act '{name}' (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"),
    };
}
