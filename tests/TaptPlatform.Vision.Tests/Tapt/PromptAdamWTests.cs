using TaptPlatform.Vision.Tapt;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Tapt;

public sealed class PromptAdamWTests
{
    [Theory]
    [InlineData(5e-4, 0.01)]
    [InlineData(0.1, 0.0)]
    public void Three_steps_give_exactly_what_torchsharps_adamw_gives(double lr, double weightDecay)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var start = new[] { randn(2, 3, 8), randn(8) };
        var grads = Enumerable.Range(0, 3).Select(_ => new[] { randn(2, 3, 8), randn(8) }).ToArray();
        Parameter[] Fresh() => [.. start.Select(t => new Parameter(t.clone(), requires_grad: true))];

        var ours = Fresh();
        var theirs = Fresh();
        var held = new PromptAdamW(ours, lr, weightDecay);
        using var reference = optim.AdamW(theirs, lr: lr, weight_decay: weightDecay);
        foreach (var g in grads)
        {
            held.ZeroGrad();
            reference.zero_grad();
            for (var i = 0; i < ours.Length; i++)
            {
                (ours[i] * g[i]).sum().backward();
                (theirs[i] * g[i]).sum().backward();
            }
            held.Step();
            reference.step();
        }
        for (var i = 0; i < ours.Length; i++)
        {
            Assert.Equal(theirs[i].data<float>().ToArray(), ours[i].data<float>().ToArray());
            Assert.False(ours[i].data<float>().ToArray().SequenceEqual(start[i].data<float>().ToArray()));
        }
    }
}
