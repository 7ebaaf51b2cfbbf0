using System.CommandLine;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// What the commands that talk to a gateway share: the --server and --key options, one line and exit 1 for a gateway's
/// or the CLI's error, and subcommands that act on one thing by its id (<c>tapt evaluations status ID</c>, <c>tapt
/// trainings cancel ID</c>).
/// </summary>
public static class GatewayCommands
{
    public delegate Task<int> ByIdAction(GatewayClient client, string id, ParseResult parsed, TextWriter stdout, CancellationToken ct);

    public static Option<string> Server() => CliOptions.Required("--server", "the gateway's URL", "URL");

    public static Option<string> Key() => CliOptions.Required("--key", "the tenant's API key", "KEY");

    /// <summary>Runs <paramref name="run"/>; a <see cref="GatewayException"/> or <see cref="CliException"/> becomes "tapt <paramref name="command"/>: message" and exit 1.</summary>
    public static async Task<int> GuardedAsync(string command, Func<Task<int>> run)
    {
        try
        {
            return await run();
        }
        catch (Exception e) when (e is GatewayException or CliException)
        {
            await Console.Error.WriteLineAsync($"tapt {command}: {e.Message}");
            return 1;
        }
    }

    /// <summary>A subcommand of <paramref name="group"/> taking --server, --key, the id and <paramref name="more"/> options.</summary>
    public static Command ById(string group, string name, string description, string idHelp, ByIdAction run, params Option[] more)
    {
        var server = Server();
        var key = Key();
        var id = new Argument<string>("id") { Description = idHelp, HelpName = "ID" };
        var command = new Command(name, description) { server, key, id };
        foreach (var option in more) command.Options.Add(option);
        command.SetAction((r, ct) => GuardedAsync($"{group} {name}", async () =>
        {
            using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
            return await run(client, r.GetValue(id)!, r, Console.Out, ct);
        }));
        return command;
    }
}
