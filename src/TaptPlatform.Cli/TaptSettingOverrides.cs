using System.CommandLine;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli;

/// <summary>
/// The test-time settings a command may override on top of a prompt artifact's recorded ones
/// (views, steps, learning rate, alignment weight, smallest view crop, precision), so every command reads them the same way:
/// <c>--{prefix}steps</c>, <c>--{prefix}lr</c>, <c>--{prefix}alignment-weight</c>, <c>--{prefix}view-min-scale</c> and the views option
/// (<c>--{prefix}views</c> unless another name is given).
/// </summary>
public sealed class TaptSettingOverrides
{
    private const string Recorded = " (default: the prompt artifact's)";

    public TaptSettingOverrides(string prefix, string? viewsOption = null)
    {
        Views = CliOptions.OptionalInt("--" + (viewsOption ?? prefix + "views"), "TAPT views per image" + Recorded, 1, 1024);
        Steps = CliOptions.OptionalInt($"--{prefix}steps", "TAPT tuning steps" + Recorded, 0, 100);
        LearningRate = CliOptions.OptionalNumber($"--{prefix}lr", "TAPT learning rate" + Recorded, 0, 10);
        AlignmentWeight = CliOptions.OptionalNumber($"--{prefix}alignment-weight", "weight of the statistics alignment loss, e.g. 100/9" + Recorded, 0, 1e6, "W");
        ViewMinScale = CliOptions.OptionalNumber($"--{prefix}view-min-scale", "smallest view crop area fraction" + Recorded, 0.01, 1, "S");
        Precision = new Option<string?>($"--{prefix}precision")
        {
            Description = "number format: fp32, bf16-scoring (the view-ranking pass in bfloat16), bf16 (every pass of the step) or auto (bf16 where the device has native bf16, else fp32)" + Recorded,
            HelpName = "fp32|bf16-scoring|bf16|auto",
        };
        Precision.AcceptOnlyFromAmong([.. TaptPrecisions.Names, TaptPrecisions.Auto]);
    }

    /// <summary>The CLI's name of a precision (and back): the library's names.</summary>
    public static TaptPrecision ParsePrecision(string name) => TaptPrecisions.TryParse(name, out var precision)
        ? precision
        : throw new CliException($"unknown precision '{name}' ({string.Join(", ", TaptPrecisions.Names)})");

    public static string PrecisionName(TaptPrecision precision) => TaptPrecisions.Name(precision);

    public Option<string?> Precision { get; }

    public Option<int?> Views { get; }
    public Option<int?> Steps { get; }
    public Option<double?> LearningRate { get; }
    public Option<double?> AlignmentWeight { get; }
    public Option<double?> ViewMinScale { get; }

    public void AddTo(Command command)
    {
        command.Options.Add(Views);
        command.Options.Add(Steps);
        command.Options.Add(LearningRate);
        command.Options.Add(AlignmentWeight);
        command.Options.Add(ViewMinScale);
        command.Options.Add(Precision);
    }

    /// <summary>The recorded settings with the given options replacing theirs ("auto" precision chosen for <paramref name="device"/>, CPU by default).</summary>
    public TaptOptions Apply(ParseResult r, TaptOptions recorded, TorchSharp.torch.Device? device = null) => recorded with
    {
        Views = r.GetValue(Views) ?? recorded.Views,
        Steps = r.GetValue(Steps) ?? recorded.Steps,
        LearningRate = r.GetValue(LearningRate) ?? recorded.LearningRate,
        AlignmentWeight = r.GetValue(AlignmentWeight) ?? recorded.AlignmentWeight,
        ViewMinScale = r.GetValue(ViewMinScale) ?? recorded.ViewMinScale,
        Precision = r.GetValue(Precision) switch
        {
            null => recorded.Precision,
            TaptPrecisions.Auto => TaptPrecisions.Fastest(device ?? TorchSharp.torch.CPU),
            var name => ParsePrecision(name),
        },
    };
}
