using System.Globalization;

namespace TaptPlatform.Cli;

/// <summary>A usage or input error: printed as one line, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>
/// Minimal GNU-style option reader: "--name value" (repeatable), "--flag", positional arguments.
/// Unknown options are errors, so typos never pass silently.
/// </summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    public CliArgs(IEnumerable<string> args, IEnumerable<string> flagNames)
    {
        var flags = new HashSet<string>(flagNames, StringComparer.Ordinal);
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                var name = a[2..];
                string? inline = null;
                var eq = name.IndexOf('=');
                if (eq > 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
                if (flags.Contains(name)) { _flags.Add(name); continue; }
                var value = inline ?? (i + 1 < list.Count ? list[++i] : throw new CliException($"option --{name} needs a value"));
                if (!_values.TryGetValue(name, out var l)) _values[name] = l = [];
                l.Add(value);
            }
            else Positional.Add(a);
        }
    }

    public List<string> Positional { get; } = [];

    public bool Flag(string name)
    {
        _consumed.Add(name);
        return _flags.Contains(name);
    }

    public IReadOnlyList<string> All(string name)
    {
        _consumed.Add(name);
        return _values.TryGetValue(name, out var l) ? l : [];
    }

    public string? Optional(string name)
    {
        var all = All(name);
        if (all.Count > 1) throw new CliException($"option --{name} given {all.Count} times; it takes one value");
        return all.Count == 1 ? all[0] : null;
    }

    public string Required(string name) => Optional(name) ?? throw new CliException($"missing required option --{name}");

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = Optional(name);
        if (s is null) return fallback;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw new CliException($"--{name} must be an integer in [{min}, {max}], got '{s}'");
        return v;
    }

    /// <summary>Accepts decimals and fractions such as "1/255".</summary>
    public double Double(string name, double fallback, double min = double.NegativeInfinity, double max = double.PositiveInfinity)
    {
        var s = Optional(name);
        if (s is null) return fallback;
        var v = ParseNumber(s) ?? throw new CliException($"--{name} must be a number (e.g. 0.5 or 1/255), got '{s}'");
        if (v < min || v > max) throw new CliException($"--{name} must be in [{min}, {max}], got {s}");
        return v;
    }

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

    /// <summary>Fails on options nobody asked for (call after reading every option).</summary>
    public void RejectUnknown()
    {
        var unknown = _values.Keys.Concat(_flags).Where(k => !_consumed.Contains(k)).ToList();
        if (unknown.Count > 0) throw new CliException($"unknown option{(unknown.Count > 1 ? "s" : "")}: {string.Join(", ", unknown.Select(u => "--" + u))}");
    }
}
