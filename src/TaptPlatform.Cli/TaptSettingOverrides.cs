using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli;

/// <summary>
/// The test-time settings a command may override on top of a prompt artifact's recorded ones
/// (views, steps, learning rate, alignment weight), so every command reads them the same way.
/// </summary>
public static class TaptSettingOverrides
{
    /// <summary>
    /// Reads <c>--{prefix}steps</c>, <c>--{prefix}lr</c>, <c>--{prefix}alignment-weight</c>, <c>--{prefix}view-min-scale</c> and the views option
    /// (<c>--{prefix}views</c> unless <paramref name="viewsOption"/> names another).
    /// </summary>
    public static TaptOptions Apply(CliArgs a, TaptOptions recorded, string prefix, string? viewsOption = null)
    {
        viewsOption ??= prefix + "views";
        var views = a.Optional(viewsOption) is null ? recorded.Views : a.Int(viewsOption, 64, 1, 1024);
        var steps = a.Optional(prefix + "steps") is null ? recorded.Steps : a.Int(prefix + "steps", 1, 0, 100);
        var lr = a.Optional(prefix + "lr") is null ? recorded.LearningRate : a.Double(prefix + "lr", 5e-4, 0, 10);
        var weight = a.Optional(prefix + "alignment-weight") is null ? recorded.AlignmentWeight : a.Double(prefix + "alignment-weight", 100.0 / 9, 0, 1e6);
        var minScale = a.Optional(prefix + "view-min-scale") is null ? recorded.ViewMinScale : a.Double(prefix + "view-min-scale", 0.08, 0.01, 1);
        return recorded with { Views = views, Steps = steps, LearningRate = lr, AlignmentWeight = weight, ViewMinScale = minScale };
    }
}
