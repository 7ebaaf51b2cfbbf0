using TaptPlatform.Cli;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Vision.Tests.Clip;

public sealed class PreprocessorConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-preprocessor-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private PreprocessorConfig LoadJson(string json)
    {
        var path = Path.Combine(_dir, "preprocessor_config.json");
        File.WriteAllText(path, json);
        return PreprocessorConfig.Load(path, 32);
    }

    [Fact]
    public void Resample_is_read_and_written_back_and_defaults_to_bicubic_as_transformers()
    {
        Assert.Equal(ImageResampling.Bicubic, LoadJson("""{"size":{"shortest_edge":32},"crop_size":{"height":32,"width":32}}""").Resampling);
        var bilinear = LoadJson("""{"size":{"shortest_edge":40},"resample":2,"crop_size":{"height":32,"width":32}}""");
        Assert.Equal(ImageResampling.Bilinear, bilinear.Resampling);
        Assert.Equal(new ImagePreprocessorOptions(40, 32, 32, ImageResampling.Bilinear), bilinear.ImageOptions);
        Assert.Equal(ImageResampling.Bilinear, LoadJson(bilinear.ToJson()).Resampling);
    }

    [Fact]
    public void An_unsupported_resample_code_is_refused_by_name()
    {
        var e = Assert.Throws<ClipCheckpointException>(() => LoadJson("""{"resample":5}"""));
        Assert.Contains("resample 5", e.Message);
    }

    [Fact]
    public void The_shipped_default_model_is_served_with_the_filter_it_was_trained_with()
    {
        var model = ModelLocator.Shipped();
        Assert.NotNull(model);
        Assert.Equal(ImageResampling.Bilinear, PreprocessorConfig.Load(Path.Combine(model, "preprocessor_config.json"), 56).Resampling);
    }
}
