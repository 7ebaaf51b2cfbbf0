using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;
using TorchSharp;

namespace TaptPlatform.Vision.Tests.Clip;

public class PromptHookTests
{
    [Fact]
    public void Text_prompts_equal_to_the_replaced_token_embeddings_give_the_plain_output()
    {
        using var scope = NewDisposeScope();
        using var ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        using var _ = no_grad();
        var ids = tensor(ckpt.Tokenizer.Encode("a photo of a sneaker").Select(i => (long)i).ToArray()).unsqueeze(0);
        var plain = ckpt.Model.EncodeText(ids);
        // Input-layer prompts that equal the embeddings they replace (positions 1..2) change nothing.
        var ctx = ckpt.Model.TextModel.TokenEmbeddings(ids).narrow(1, 1, 2).squeeze(0);
        var prompted = ckpt.Model.EncodeText(ids, new PromptTokens([ctx]));
        Assert.True(allclose(plain, prompted, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Zero_prompt_tokens_give_exactly_the_plain_model()
    {
        using var scope = NewDisposeScope();
        using var ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        using var _ = no_grad();
        var pixels = rand(2, 3, 24, 24);
        var ids = tensor(ckpt.Tokenizer.Encode("a photo of a sneaker").Select(i => (long)i).ToArray()).unsqueeze(0);
        var d = ckpt.Config.Vision.HiddenSize;
        var empty = new PromptTokens([zeros(0, d)]);
        Assert.Equal(0f, (ckpt.Model.EncodeImage(pixels) - ckpt.Model.EncodeImage(pixels, empty)).abs().max().item<float>());
        var emptyText = new PromptTokens([zeros(0, ckpt.Config.Text.HiddenSize)]);
        Assert.Equal(0f, (ckpt.Model.EncodeText(ids) - ckpt.Model.EncodeText(ids, emptyText)).abs().max().item<float>());
    }

    [Fact]
    public void Visual_prompts_change_the_output_and_receive_gradients_at_every_depth()
    {
        using var scope = NewDisposeScope();
        using var ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        var d = ckpt.Config.Vision.HiddenSize;
        using var std = 0.02.ToScalar();
        var layers = Enumerable.Range(0, 3).Select(_ => (Tensor?)randn(2, d).mul(std).requires_grad_()).ToList();
        var pixels = rand(2, 3, 24, 24);
        var blocks = new List<Tensor>();
        var features = ckpt.Model.EncodeImage(pixels, new PromptTokens(layers), blocks);
        Assert.Equal(3, blocks.Count);
        Assert.Equal(ckpt.Config.Vision.NumPositions + 2, blocks[0].shape[1]);
        features.sum().backward();
        Assert.All(layers, p => Assert.True(p!.grad is not null && p.grad.abs().sum().item<float>() > 0));
        using (no_grad())
            Assert.False(allclose(features, ckpt.Model.EncodeImage(pixels)));
    }

    [Fact]
    public void Grouped_prompts_give_each_group_its_own_result()
    {
        using var scope = NewDisposeScope();
        using var ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        using var _ = no_grad();
        var d = ckpt.Config.Vision.HiddenSize;
        var a = randn(2, d);
        var b = randn(2, d);
        var pixels = rand(4, 3, 24, 24);
        var grouped = ckpt.Model.EncodeImage(pixels, new PromptTokens([stack([a, b])]));
        var first = ckpt.Model.EncodeImage(pixels.narrow(0, 0, 2), new PromptTokens([a]));
        var second = ckpt.Model.EncodeImage(pixels.narrow(0, 2, 2), new PromptTokens([b]));
        Assert.True(allclose(grouped, cat([first, second], 0), rtol: 1e-5, atol: 1e-5));
    }
}
