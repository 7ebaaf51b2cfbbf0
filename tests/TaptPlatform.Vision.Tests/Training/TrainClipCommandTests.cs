using TaptPlatform.Cli;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class TrainClipCommandTests : IDisposable
{
    private readonly string _data = SyntheticFashion.CreateDataset(256, 64);
    private readonly string _out = Directory.CreateTempSubdirectory("tapt-cli-train-").FullName;

    public void Dispose()
    {
        Directory.Delete(_data, recursive: true);
        Directory.Delete(_out, recursive: true);
    }

    [Fact]
    public void Train_clip_then_zero_shot_with_the_shipped_architecture()
    {
        var dir = Path.Combine(_out, "model");
        Assert.Equal(0, TrainClipCommand.Run(["--out", dir, "--epochs", "1", "--batch", "64", "--limit", "128", "--data", _data, "--seed", "3"]));
        using (var ckpt = ClipCheckpoint.Load(dir))
            Assert.Equal(ClipTrainer.DefaultConfig().Vision, ckpt.Config.Vision);
        Assert.Equal(0, ZeroShotCommand.Run(["--model", dir, "--data", _data, "--template", "a photo of the {}."]));
    }

    [Fact]
    public void Vision_width_and_depth_options_shape_the_trained_tower()
    {
        var dir = Path.Combine(_out, "narrow");
        Assert.Equal(0, TrainClipCommand.Run(["--out", dir, "--epochs", "1", "--batch", "64", "--limit", "64", "--data", _data,
            "--image-size", "28", "--patch-size", "7", "--vision-width", "64", "--vision-layers", "2"]));
        using var ckpt = ClipCheckpoint.Load(dir);
        Assert.Equal((64, 256, 2, 2), (ckpt.Config.Vision.HiddenSize, ckpt.Config.Vision.IntermediateSize, ckpt.Config.Vision.NumAttentionHeads, ckpt.Config.Vision.NumHiddenLayers));
    }

    [Fact]
    public void Bad_options_are_usage_errors()
    {
        Assert.Throws<CliException>(() => TrainClipCommand.Run(["--out", _out, "--vision-width", "100"]));
        Assert.Throws<CliException>(() => TrainClipCommand.Run(["--epochs", "2"]));
        Assert.Throws<CliException>(() => TrainClipCommand.Run(["--out", _out, "--batch", "1"]));
        Assert.Throws<CliException>(() => TrainClipCommand.Run(["--out", _out, "--bogus", "1"]));
        Assert.Throws<CliException>(() => ZeroShotCommand.ToFormat("no placeholder"));
        Assert.Equal("a {{x}} photo of a {0}.", ZeroShotCommand.ToFormat("a {x} photo of a {}."));
        Assert.Equal("a photo of a {0}.", ZeroShotCommand.ToFormat("a photo of a {0}."));
    }
}
