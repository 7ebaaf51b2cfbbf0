using System.Globalization;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt audit</c>: the tenant's flagged images (TAPT disagreed with plain CLIP, or other flag reasons).</summary>
public static class AuditCommand
{
    public const string Usage = """
        usage: tapt audit --server URL --key KEY [--job ID] [--reason changedPrediction|closerToAttacked|lowConfidence] [--limit 100]
        Lists flagged images, newest jobs first (or of one job): why each was flagged, TAPT's label against plain CLIP's,
        and where its audit record is (GET URL with the key).
        """;

    public static int Run(string[] argv)
    {
        if (argv.Length > 0 && argv[0] is "--help" or "-h") { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, []);
        var server = a.Required("server");
        var key = a.Required("key");
        var job = a.Optional("job");
        var reason = a.Optional("reason");
        var limit = a.Int("limit", 100, 1, 500);
        a.RejectUnknown();
        if (a.Positional.Count > 0) throw new CliException($"unexpected argument '{a.Positional[0]}'");
        try
        {
            return RunAsync(server, key, job, reason, limit, Console.Out, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (GatewayException e)
        {
            Console.Error.WriteLine($"tapt audit: {e.Message}");
            return 1;
        }
    }

    public static async Task<int> RunAsync(string server, string key, string? job, string? reason, int limit, TextWriter stdout, CancellationToken ct)
    {
        using var client = new GatewayClient(server, key);
        var page = await client.AuditAsync(job, reason, limit, ct);
        TextTable.Write(stdout, ["job", "#", "image", "TAPT", "conf", "CLIP", "reasons", "record"],
            page.Items.Select(i => (IReadOnlyList<string>)
            [
                i.JobName is { Length: > 0 } n ? $"{i.JobId} ({n})" : i.JobId,
                i.Result.Index.ToString(CultureInfo.InvariantCulture),
                i.Result.Name,
                i.Result.Label ?? i.Result.Prediction.ToString(CultureInfo.InvariantCulture),
                TextTable.Percent(i.Result.Confidence),
                i.Result.BaselineLabel ?? i.Result.BaselinePrediction.ToString(CultureInfo.InvariantCulture),
                string.Join(',', i.Result.Reasons ?? []),
                new Uri(client.Server, i.RecordUrl.TrimStart('/')).ToString(),
            ]));
        stdout.WriteLine($"{page.Items.Count} flagged image(s) in {page.JobsScanned} job(s){(page.Truncated ? " (truncated: use --limit or --job)" : "")}");
        return 0;
    }
}
