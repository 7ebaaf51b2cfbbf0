using System.CommandLine;
using TaptPlatform.Cli;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Vision.Tests.Cli;

public sealed class TaptSettingOverridesTests
{
    private static readonly TaptOptions Recorded = new() { Views = 32, Steps = 2, LearningRate = 0.01, AlignmentWeight = 0 };

    /// <summary>Parses <paramref name="args"/> with the overrides' options only.</summary>
    private static (TaptSettingOverrides Overrides, ParseResult Result) Parse(string prefix, string? viewsOption, params string[] args)
    {
        var overrides = new TaptSettingOverrides(prefix, viewsOption);
        var command = new RootCommand();
        overrides.AddTo(command);
        return (overrides, command.Parse(args));
    }

    [Fact]
    public void Options_not_given_keep_the_settings_recorded_in_the_artifact()
    {
        var (o, r) = Parse("tapt-", null);
        Assert.Empty(r.Errors);
        Assert.Equal(Recorded, o.Apply(r, Recorded));
    }

    [Fact]
    public void Given_options_replace_only_their_own_settings()
    {
        var (o, r) = Parse("tapt-", "views", "--tapt-lr", "5e-4", "--tapt-alignment-weight", "100/9", "--views", "64");
        Assert.Empty(r.Errors);
        Assert.Equal(Recorded with { LearningRate = 5e-4, AlignmentWeight = 100.0 / 9, Views = 64 }, o.Apply(r, Recorded));
    }

    [Theory]
    [InlineData("--lr", "-1")]
    [InlineData("--steps", "101")]
    [InlineData("--views", "0")]
    [InlineData("--alignment-weight", "x")]
    public void Out_of_range_values_are_refused_with_the_option_named(string option, string value)
    {
        var (_, r) = Parse("", null, option, value);
        Assert.Contains(option, Assert.Single(r.Errors).Message);
    }

    [Fact]
    public void Sweep_list_gives_one_setting_per_item_on_top_of_the_recorded_ones()
    {
        var list = EvalCommand.ParseSweep("5e-4:1:100/9, 0.02:3:0", Recorded);
        Assert.Equal([Recorded with { LearningRate = 5e-4, Steps = 1, AlignmentWeight = 100.0 / 9 }, Recorded with { LearningRate = 0.02, Steps = 3, AlignmentWeight = 0 }], list);
    }

    [Fact]
    public void Sweep_item_may_also_set_the_smallest_view_crop()
    {
        var list = EvalCommand.ParseSweep("0.02:1:0:0.5", Recorded);
        Assert.Equal(0.5, Assert.Single(list).ViewMinScale);
    }

    [Fact]
    public void Sweep_item_may_also_set_the_precision_with_or_without_the_crop()
    {
        var list = EvalCommand.ParseSweep("0.02:1:0::bf16-scoring, 0.02:1:0:0.5:fp32", Recorded);
        Assert.Equal(TaptPrecision.Bf16Scoring, list[0].Precision);
        Assert.Equal(Recorded.ViewMinScale, list[0].ViewMinScale);
        Assert.Equal((0.5, TaptPrecision.Fp32), (list[1].ViewMinScale, list[1].Precision));
    }

    [Theory]
    [InlineData("0.02:1:0:0")]
    [InlineData("0.02:1:0:0.5:fp16")]
    [InlineData("0.02:1:0:0.5:fp32:x")]
    [InlineData("0.02:1")]
    [InlineData("x:1:0")]
    [InlineData("0.02:-1:0")]
    [InlineData("0.02:1:-3")]
    [InlineData(",")]
    public void Malformed_sweep_items_are_refused(string text) =>
        Assert.Throws<CliException>(() => EvalCommand.ParseSweep(text, Recorded));
}
