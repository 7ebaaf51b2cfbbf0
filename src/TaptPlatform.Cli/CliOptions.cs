using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace TaptPlatform.Cli;

/// <summary>
/// Option factories with the value rules every command shares: integers and numbers with a range, numbers written
/// as fractions ("1/255"), and one error message per kind of mistake that names the option.
/// </summary>
public static class CliOptions
{
    public static Option<string?> Text(string name, string description, string helpName = "TEXT") =>
        new(name) { Description = description, HelpName = helpName };

    public static Option<string> Defaulted(string name, string fallback, string description, string helpName = "TEXT") =>
        new(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => fallback };

    public static Option<string> Required(string name, string description, string helpName = "TEXT") =>
        new(name) { Description = description, HelpName = helpName, Required = true };

    /// <summary>A repeatable option (<c>--image a --image b</c>).</summary>
    public static Option<string[]> Many(string name, string description, string helpName = "TEXT") =>
        new(name) { Description = description, HelpName = helpName, Arity = ArgumentArity.OneOrMore };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>One of a fixed set of words; completion offers them.</summary>
    public static Option<string> Choice(string name, string fallback, string description, params string[] values)
    {
        var o = Defaulted(name, fallback, description, string.Join('|', values));
        o.CompletionSources.Add(values);
        o.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<string>();
            if (!values.Contains(v, StringComparer.Ordinal)) r.AddError($"{name} must be {Or(values)}, got '{v}'");
        });
        return o;
    }

    /// <summary>One of a fixed set of words or absent (null).</summary>
    public static Option<string?> OptionalChoice(string name, string description, params string[] values)
    {
        var o = Text(name, description, string.Join('|', values));
        o.CompletionSources.Add(values);
        o.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<string?>();
            if (v is not null && !values.Contains(v, StringComparer.Ordinal)) r.AddError($"{name} must be {Or(values)}, got '{v}'");
        });
        return o;
    }

    public static Option<int> Int(string name, int fallback, string description, int min = int.MinValue, int max = int.MaxValue, string helpName = "N")
    {
        var o = new Option<int>(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => fallback };
        o.CustomParser = r => ParseInt(r, name, min, max) ?? fallback;
        return o;
    }

    /// <summary>An integer option whose absence means "keep the recorded value" (null).</summary>
    public static Option<int?> OptionalInt(string name, string description, int min, int max, string helpName = "N")
    {
        var o = new Option<int?>(name) { Description = description, HelpName = helpName };
        o.CustomParser = r => ParseInt(r, name, min, max);
        return o;
    }

    /// <summary>A number option that also accepts fractions such as 1/255.</summary>
    public static Option<double> Number(string name, double fallback, string description, double min = double.NegativeInfinity,
        double max = double.PositiveInfinity, string helpName = "X")
    {
        var o = new Option<double>(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => fallback };
        o.CustomParser = r => ParseDouble(r, name, min, max) ?? fallback;
        return o;
    }

    /// <summary>A number option (fractions accepted) whose absence means "keep the recorded value" (null).</summary>
    public static Option<double?> OptionalNumber(string name, string description, double min, double max, string helpName = "X")
    {
        var o = new Option<double?>(name) { Description = description, HelpName = helpName };
        o.CustomParser = r => ParseDouble(r, name, min, max);
        return o;
    }

    /// <summary>Accepts decimals and fractions such as "1/255"; null when the text is neither.</summary>
    public static double? ParseNumber(string s)
    {
        var slash = s.IndexOf('/');
        if (slash > 0)
        {
            if (double.TryParse(s[..slash], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) &&
                double.TryParse(s[(slash + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d != 0)
                return n / d;
            return null;
        }
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    private static int? ParseInt(ArgumentResult r, string name, int min, int max)
    {
        // No token: the library reports the missing value itself.
        if (r.Tokens.Count == 0) return null;
        var s = r.Tokens[^1].Value;
        if (int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
        r.AddError($"{name} must be an integer in [{min}, {max}], got '{s}'");
        return null;
    }

    private static double? ParseDouble(ArgumentResult r, string name, double min, double max)
    {
        if (r.Tokens.Count == 0) return null;
        var s = r.Tokens[^1].Value;
        if (ParseNumber(s) is not { } v)
        {
            r.AddError($"{name} must be a number (e.g. 0.5 or 1/255), got '{s}'");
            return null;
        }
        if (v >= min && v <= max) return v;
        r.AddError($"{name} must be in [{min}, {max}], got {s}");
        return null;
    }

    private static string Or(string[] values) => values.Length == 1 ? values[0] : string.Join(", ", values[..^1]) + " or " + values[^1];
}

/// <summary>The options most commands share: the model, its prompt artifact, the device and torch's threads.</summary>
public static class CommonOptions
{
    public static Option<string?> Model() =>
        CliOptions.Text("--model", "CLIP model directory (default: $TAPT_MODEL, else the shipped models/fashion-clip-small)", "DIR");

    public static Option<string?> Prompts() =>
        CliOptions.Text("--prompts", $"prompt artifact (default: MODEL/{Session.DefaultArtifactName})", "FILE");

    public static Option<string?> Device() =>
        CliOptions.Text("--device", "cpu (default), cuda or cuda:N; $TAPT_DEVICE when absent", "DEVICE");

    /// <summary>--threads N sets torch's intra-op threads (default: all cores).</summary>
    public static Option<int> Threads() => CliOptions.Int("--threads", 0, "torch threads (0: torch's choice, all cores)", 0, 1024);

    public static Option<bool> Json() => CliOptions.Flag("--json", "print the result as JSON");

    public static void ApplyThreads(int n)
    {
        if (n > 0) TorchSharp.torch.set_num_threads(n);
    }
}
