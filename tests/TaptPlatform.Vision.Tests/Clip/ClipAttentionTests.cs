using TorchSharp;
using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Clip;

public class ClipAttentionTests
{
    /// <summary>Bf16 attention on a CPU runs in fp32 inside: it must still answer in bf16, agree with the fp32 module, and pass gradients.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bf16_attention_agrees_with_fp32_and_carries_gradients(bool causal)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var fp32 = new ClipAttention(64, 4);
        using var bf16 = new ClipAttention(64, 4);
        bf16.load_state_dict(fp32.state_dict());
        bf16.to(ScalarType.BFloat16);
        var x = randn(6, 12, 64);
        var low = x.to(ScalarType.BFloat16).requires_grad_();

        var expected = fp32.Forward(x, causal);
        var actual = bf16.Forward(low, causal);

        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        var error = (actual.to(ScalarType.Float32) - expected).abs().max().item<float>();
        Assert.True(error < 0.05f * expected.abs().max().item<float>(), $"max error {error}");
        actual.to(ScalarType.Float32).square().sum().backward();
        Assert.NotNull(low.grad);
        Assert.Equal(ScalarType.BFloat16, low.grad!.dtype);
        Assert.True(low.grad.to(ScalarType.Float32).abs().sum().item<float>() > 0);
    }
}
