using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;
using TorchSharp;

namespace TaptPlatform.Vision.Tests.Clip;

public sealed class ClipCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string CopyCase(string name = "tiny-quickgelu-legacy-eos")
    {
        foreach (var f in Directory.GetFiles(GoldenFiles.Case(name)))
            File.Copy(f, Path.Combine(_dir, Path.GetFileName(f)), overwrite: true);
        return _dir;
    }

    private void RewriteWeights(Action<Dictionary<string, Tensor>> edit)
    {
        var path = Path.Combine(_dir, "model.safetensors");
        var file = SafeTensorsFile.Open(path);
        var tensors = file.Tensors.Keys.ToDictionary(k => k, file.ReadFloat32);
        edit(tensors);
        SafeTensorsFile.Write(path, tensors);
    }

    [Fact]
    public void Missing_tensor_is_refused_by_name()
    {
        CopyCase();
        RewriteWeights(t => t.Remove("vision_model.encoder.layers.1.mlp.fc2.bias"));
        var e = Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(_dir));
        Assert.Contains("missing tensor vision_model.encoder.layers.1.mlp.fc2.bias", e.Message);
    }

    [Fact]
    public void Extra_tensor_is_refused_by_name()
    {
        CopyCase();
        RewriteWeights(t => t["vision_model.extra_head.weight"] = zeros(2, 2));
        var e = Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(_dir));
        Assert.Contains("unexpected tensor vision_model.extra_head.weight", e.Message);
    }

    [Fact]
    public void Legacy_position_ids_buffers_are_accepted()
    {
        CopyCase();
        using var positions = 77.ToScalar();
        RewriteWeights(t => t["text_model.embeddings.position_ids"] = arange(positions).unsqueeze(0).to(ScalarType.Float32));
        using var ckpt = ClipCheckpoint.Load(_dir);
        Assert.NotNull(ckpt.Model);
    }

    [Fact]
    public void Misshaped_tensor_is_refused_with_both_shapes()
    {
        CopyCase();
        RewriteWeights(t => t["text_projection.weight"] = zeros(3, 3));
        var e = Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(_dir));
        Assert.Contains("text_projection.weight has shape [3, 3]", e.Message);
    }

    [Fact]
    public void Truncated_weights_file_is_refused()
    {
        CopyCase();
        var path = Path.Combine(_dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(_dir));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void Missing_directory_and_missing_files_are_refused()
    {
        Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(Path.Combine(_dir, "nope")));
        CopyCase();
        File.Delete(Path.Combine(_dir, "merges.txt"));
        var e = Assert.Throws<ClipCheckpointException>(() => ClipCheckpoint.Load(_dir));
        Assert.Contains("merges.txt", e.Message);
    }

    [Fact]
    public void Config_defaults_follow_transformers_when_keys_are_absent()
    {
        var c = ClipConfig.Parse("""{"model_type":"clip","text_config":{},"vision_config":{"patch_size":16}}""");
        Assert.Equal(49408, c.Text.VocabSize);
        Assert.Equal(49407, c.Text.EosTokenId);
        Assert.Equal("quick_gelu", c.Vision.HiddenAct);
        Assert.Equal(197, c.Vision.NumPositions);
        Assert.Equal(512, c.ProjectionDim);
    }

    [Fact]
    public void Unsupported_activation_is_refused()
    {
        Assert.Throws<FormatException>(() => ClipConfig.Parse("""{"text_config":{"hidden_act":"mish"}}"""));
    }

    [Fact]
    public void Preprocessor_config_sets_normalisation()
    {
        using var ckpt = ClipCheckpoint.Load(GoldenFiles.Case("tiny-gelu-new-eos"));
        Assert.Equal([0.5f, 0.5f, 0.5f], ckpt.Model.ImageMean);
        Assert.Equal(0.3f, ckpt.Model.ImageStd[1], 6);
    }
}
