using System.Globalization;
using System.Text.Json;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// A robustness report of the gateway (<c>tapt-robustness-report/1</c>) as text, in the shape <c>tapt eval</c> prints: per ε,
/// clean and robust accuracy per method, AutoAttack's robust accuracy after each stage, Square's mean queries per image;
/// then the gradient-masking checks, warnings marked.
/// </summary>
public static class EvaluationReportPrinter
{
    private static readonly (string Key, string Name)[] Methods = [("clip", "CLIP"), ("apt", "APT"), ("tapt", "TAPT")];

    public static void Print(JsonElement report, TextWriter o)
    {
        var attack = report.GetProperty("attack");
        o.WriteLine(Inv($"{report.GetProperty("jobId").GetString()} {report.GetProperty("state").GetString()}: {report.GetProperty("n").GetInt32()} images; attack {Text(attack, "name") ?? Text(attack, "kind")} ({Text(attack, "kind")}), protocol {Text(attack, "protocol")}"));
        foreach (var result in report.GetProperty("results").EnumerateArray())
        {
            o.WriteLine(Inv($"eps {Eps(result.GetProperty("epsilon").GetDouble())} (n {result.GetProperty("n").GetInt32()}{(result.GetProperty("complete").GetBoolean() ? "" : ", partial")})"));
            o.WriteLine($"  {"method",-8} {"clean",8} {"robust",8}");
            foreach (var (key, name) in Methods)
                o.WriteLine($"  {name,-8} {Pct(result.GetProperty("clean").GetProperty(key).GetProperty("accuracy")),8} {Pct(result.GetProperty("robust").GetProperty(key).GetProperty("accuracy")),8}");
            if (result.TryGetProperty("stages", out var stages) && stages.ValueKind == JsonValueKind.Array)
                foreach (var st in stages.EnumerateArray())
                    o.WriteLine(Inv($"  after {st.GetProperty("stage").GetInt32()}. {st.GetProperty("attack").GetString(),-12}") +
                        string.Concat(Methods.Select(m => st.GetProperty(m.Key).ValueKind == JsonValueKind.Null ? $"  {m.Name} not attacked" : $"  {m.Name} {Pct(st.GetProperty(m.Key))}")));
            if (result.TryGetProperty("queriesPerImage", out var q) && q.ValueKind == JsonValueKind.Object)
                o.WriteLine("  queries per image (mean, 0 for images already wrong): " +
                    string.Join(", ", Methods.Where(m => q.GetProperty(m.Key).ValueKind != JsonValueKind.Null).Select(m => Inv($"{m.Name} {q.GetProperty(m.Key).GetDouble():F1}"))));
        }
        foreach (var c in report.GetProperty("checks").EnumerateArray())
        {
            var at = c.TryGetProperty("epsilon", out var e) && e.ValueKind == JsonValueKind.Number ? $" at eps {Eps(e.GetDouble())}" : "";
            o.WriteLine($"{(c.GetProperty("warning").GetBoolean() ? "WARNING" : "ok"),-8} {c.GetProperty("check").GetString()} ({c.GetProperty("method").GetString()}){at}: {c.GetProperty("detail").GetString()}");
        }
    }

    private static string? Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static string Pct(JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetDouble().ToString("P1", CultureInfo.InvariantCulture) : "–";

    private static string Eps(double e) => Inv($"{e * 255:G4}/255");

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
