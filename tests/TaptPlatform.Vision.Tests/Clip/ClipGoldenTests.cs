using System.Text.Json;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Clip;

/// <summary>Our CLIP against an independent PyTorch reference of transformers' CLIPModel.</summary>
public class ClipGoldenTests
{
    private const double Tolerance = 1e-4;

    private sealed record Expected(string[] texts, int[][] input_ids);

    private static (ClipCheckpoint ckpt, Expected exp, SafeTensorsFile values, Tensor pixels) Load(string name)
    {
        var dir = GoldenFiles.Case(name);
        var ckpt = ClipCheckpoint.Load(dir);
        var exp = JsonSerializer.Deserialize<Expected>(File.ReadAllText(Path.Combine(dir, "expected.json")))!;
        var values = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        var pixels = SafeTensorsFile.Open(Path.Combine(dir, "inputs.safetensors")).ReadFloat32("pixel_values");
        return (ckpt, exp, values, pixels);
    }

    private static Tensor Ids(ClipCheckpoint ckpt, IEnumerable<int[]> rows)
    {
        var list = rows.ToList();
        var len = list.Max(r => r.Length);
        var flat = new long[list.Count * len];
        Array.Fill(flat, ckpt.Config.Text.PadTokenId);
        for (var i = 0; i < list.Count; i++)
            for (var j = 0; j < list[i].Length; j++) flat[i * len + j] = list[i][j];
        return tensor(flat, [list.Count, len]);
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= Tolerance, $"{what}: max |diff| = {diff:E3} > {Tolerance:E0}");
    }

    [Theory]
    [MemberData(nameof(GoldenFiles.ModelCases), MemberType = typeof(GoldenFiles))]
    public void Token_ids_equal_the_reference_tokenizer(string name)
    {
        var (ckpt, exp, _, _) = Load(name);
        using (ckpt)
            for (var i = 0; i < exp.texts.Length; i++)
                Assert.Equal(exp.input_ids[i], ckpt.Tokenizer.Encode(exp.texts[i]));
    }

    [Theory]
    [MemberData(nameof(GoldenFiles.ModelCases), MemberType = typeof(GoldenFiles))]
    public void Embeddings_and_logits_match_the_reference_within_1e_4(string name)
    {
        using var scope = NewDisposeScope();
        var (ckpt, exp, values, pixels) = Load(name);
        using (ckpt)
        using (no_grad())
        {
            var model = ckpt.Model;
            var ids = Ids(ckpt, exp.texts.Select(ckpt.Tokenizer.Encode));
            var img = model.EncodeImage(pixels);
            var txt = model.EncodeText(ids);
            AssertClose(values.ReadFloat32("vision_pooler_output"), model.VisionPooled(pixels), "vision pooled");
            AssertClose(values.ReadFloat32("text_pooler_output"), model.TextPooled(ids), "text pooled");
            AssertClose(values.ReadFloat32("image_embeds"), nn.functional.normalize(img, dim: -1), "image_embeds");
            AssertClose(values.ReadFloat32("text_embeds"), nn.functional.normalize(txt, dim: -1), "text_embeds");
            AssertClose(values.ReadFloat32("logits_per_image"), model.Logits(img, txt), "logits_per_image");
        }
    }

    [Theory]
    [MemberData(nameof(GoldenFiles.ModelCases), MemberType = typeof(GoldenFiles))]
    public void Vision_block_inputs_match_the_reference_hidden_states(string name)
    {
        using var scope = NewDisposeScope();
        var (ckpt, _, values, pixels) = Load(name);
        using (ckpt)
        using (no_grad())
        {
            var captured = new List<Tensor>();
            ckpt.Model.EncodeImage(pixels, blockInputs: captured);
            var expected = values.ReadFloat32("vision_block_inputs");
            Assert.Equal(expected.shape[0], captured.Count);
            AssertClose(expected, stack(captured), "vision block inputs");
        }
    }
}
