using System.CommandLine;
using System.Globalization;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt audit</c>: the tenant's flagged images (TAPT disagreed with plain CLIP, or other flag reasons).</summary>
public static class AuditCommand
{
    public static Command Create()
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var key = CliOptions.Required("--key", "the tenant's API key", "KEY");
        var job = CliOptions.Text("--job", "only this job's flagged images", "ID");
        var reason = CliOptions.Text("--reason", "only images flagged for this reason", "changedPrediction|closerToAttacked|lowConfidence");
        reason.CompletionSources.Add("changedPrediction", "closerToAttacked", "lowConfidence");
        var verdict = CliOptions.Text("--verdict", "only images with this current verdict", "unreviewed|confirmed-attack|false-alarm|needs-follow-up");
        verdict.CompletionSources.Add("unreviewed", "confirmed-attack", "false-alarm", "needs-follow-up");
        var limit = CliOptions.Int("--limit", 100, "flagged images at most", 1, 500);
        var command = new Command("audit", """
            Lists a tenant's flagged images from a gateway.
            Lists flagged images, unreviewed first, then newest first (or of one job): why each was flagged, TAPT's
            label against plain CLIP's, the current verdict, and where its audit record is (GET URL with the key).
            """)
        {
            server, key, job, reason, verdict, limit,
        };
        command.SetAction(r =>
        {
            try
            {
                return RunAsync(r.GetValue(server)!, r.GetValue(key)!, r.GetValue(job), r.GetValue(reason), r.GetValue(limit), Console.Out, CancellationToken.None, r.GetValue(verdict))
                    .GetAwaiter().GetResult();
            }
            catch (GatewayException e)
            {
                Console.Error.WriteLine($"tapt audit: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    public static async Task<int> RunAsync(string server, string key, string? job, string? reason, int limit, TextWriter stdout, CancellationToken ct,
        string? verdict = null)
    {
        using var client = new GatewayClient(server, key);
        var page = await client.AuditAsync(job, reason, limit, ct, verdict);
        TextTable.Write(stdout, ["job", "#", "image", "TAPT", "conf", "CLIP", "reasons", "verdict", "record"],
            page.Items.Select(i => (IReadOnlyList<string>)
            [
                i.JobName is { Length: > 0 } n ? $"{i.JobId} ({n})" : i.JobId,
                i.Result.Index.ToString(CultureInfo.InvariantCulture),
                i.Result.Name,
                i.Result.Label ?? i.Result.Prediction.ToString(CultureInfo.InvariantCulture),
                TextTable.Percent(i.Result.Confidence),
                i.Result.BaselineLabel ?? i.Result.BaselinePrediction.ToString(CultureInfo.InvariantCulture),
                string.Join(',', i.Result.Reasons ?? []),
                i.Review is { } review ? $"{review.Verdict} (r{review.Revision.ToString(CultureInfo.InvariantCulture)})" : "unreviewed",
                new Uri(client.Server, i.RecordUrl.TrimStart('/')).ToString(),
            ]));
        stdout.WriteLine($"{page.Items.Count} flagged image(s) in {page.JobsScanned} job(s){(page.Truncated ? " (truncated: use --limit or --job)" : "")}");
        if (page.Verdicts is { Count: > 0 } counts)
            stdout.WriteLine("by verdict: " + string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key} {c.Value.ToString(CultureInfo.InvariantCulture)}")));
        return 0;
    }
}
