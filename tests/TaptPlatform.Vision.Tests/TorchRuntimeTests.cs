using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests;

public class TorchRuntimeTests
{
    [Fact]
    public void Torch_initialises_and_computes_on_cpu()
    {
        using var a = tensor(new float[] { 1, 2, 3 });
        using var b = a.matmul(a);
        Assert.Equal(14f, b.item<float>());
    }
}
