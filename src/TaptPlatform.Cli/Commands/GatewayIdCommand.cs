using System.CommandLine;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// A subcommand that acts on one thing on a gateway by its id (<c>tapt evaluations status ID</c>, <c>tapt trainings
/// cancel ID</c>): --server, --key, the id and any further options; a gateway's or the CLI's error is one line and exit 1.
/// </summary>
public static class GatewayIdCommand
{
    public delegate Task<int> Action(GatewayClient client, string id, ParseResult parsed, TextWriter stdout, CancellationToken ct);

    public static Command Create(string group, string name, string description, string idHelp, Action run, params Option[] more)
    {
        var server = CliOptions.Required("--server", "the gateway's URL", "URL");
        var key = CliOptions.Required("--key", "the tenant's API key", "KEY");
        var id = new Argument<string>("id") { Description = idHelp, HelpName = "ID" };
        var command = new Command(name, description) { server, key, id };
        foreach (var option in more) command.Options.Add(option);
        command.SetAction(async (r, ct) =>
        {
            try
            {
                using var client = new GatewayClient(r.GetValue(server)!, r.GetValue(key)!);
                return await run(client, r.GetValue(id)!, r, Console.Out, ct);
            }
            catch (Exception e) when (e is GatewayException or CliException)
            {
                Console.Error.WriteLine($"tapt {group} {name}: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
