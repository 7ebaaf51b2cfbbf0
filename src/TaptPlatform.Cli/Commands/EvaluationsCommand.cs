using System.CommandLine;
using System.Globalization;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt evaluations create|status|cancel|report</c>: robustness evaluations on a gateway (the API's <c>/api/evaluations</c>);
/// <c>tapt eval</c> evaluates in this process instead.
/// </summary>
public static class EvaluationsCommand
{
    public static Command Create() => new("evaluations", """
        Robustness evaluations on a gateway: creating one, its state, cancelling it and its report.
        create uploads a folder of labelled images (one subfolder per label) and starts an evaluation under an attack
        (pgd, cw, di, apgd-ce, apgd-t, fab-t, square, autoattack, autoattack-rand); status ID prints an evaluation's state
        and progress; cancel ID stops it within an attack step, frees its running slot and keeps the outcomes recorded so
        far (a second cancel changes nothing); report ID prints its accuracies, AutoAttack's stages, Square's queries and
        the gradient-masking checks.
        """)
    {
        EvaluationsCreateCommand.Create(),
        Subcommand("status", "Prints an evaluation's state and progress."),
        Subcommand("cancel", "Cancels an evaluation; the outcomes recorded so far stay."),
        Subcommand("report", "Prints an evaluation's report (partial while it runs): accuracy per ε, stages, queries and checks."),
    };

    private static Command Subcommand(string name, string description) =>
        GatewayCommands.ById("evaluations", name, description, "the evaluation's id (eval-…)", (client, id, _, stdout, ct) => RunAsync(client, name, id, stdout, ct));

    /// <summary>Runs <c>status</c>, <c>cancel</c> or <c>report</c> for one evaluation and prints its description or report; the exit code.</summary>
    public static async Task<int> RunAsync(string server, string key, string action, string id, TextWriter stdout, CancellationToken ct)
    {
        using var client = new GatewayClient(server, key);
        return await RunAsync(client, action, id, stdout, ct);
    }

    private static async Task<int> RunAsync(GatewayClient client, string action, string id, TextWriter stdout, CancellationToken ct)
    {
        if (action == "report")
        {
            EvaluationReportPrinter.Print(await client.GetEvaluationReportAsync(id, ct), stdout);
            return 0;
        }
        var info = action == "cancel" ? await client.CancelEvaluationAsync(id, ct) : await client.GetEvaluationAsync(id, ct);
        stdout.WriteLine(Describe(info));
        return 0;
    }

    /// <summary>One line: id, state, outcomes recorded of the total, and why it stopped (if it did).</summary>
    public static string Describe(EvaluationInfo e) => string.Create(CultureInfo.InvariantCulture,
        $"{e.JobId} {e.State}: {e.OutcomesRecorded} / {e.OutcomesTotal} outcomes ({e.Images} images, cost {e.CostPerImage * e.Images}){(e.Error is null ? "" : $" — {e.Error}")}");
}
