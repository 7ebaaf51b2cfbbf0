using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using TaptPlatform.Cli.Commands;

namespace TaptPlatform.Cli;

/// <summary>
/// The <c>tapt</c> command tree and how it runs: usage errors (the parser's and <see cref="CliException"/>) exit 2,
/// user-facing runtime failures (<see cref="CliErrors.IsUserFacing"/>) exit 1, each as one line on stderr.
/// </summary>
public static class TaptCli
{
    public const int UsageError = 2;
    public const int Failure = 1;

    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("tapt: CLIP classification defended by test-time adversarial prompt tuning (TAPT), and the clients of its platform.")
        {
            AuditCommand.Create(), BenchCommand.Create(), ClassifyCommand.Create(), ClipCommand.Create(), ErasureCommand.Create(), EvalCommand.Create(), EvaluationsCommand.Create(),
            LoadTestCommand.Create(), ModelsCommand.Create(), PromptsCommand.Create(), SamplesCommand.Create(), SubmitCommand.Create(), TrainClipCommand.Create(), TrainingsCommand.Create(),
            ZeroShotCommand.Create(),
        };
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new SummaryListingHelp((HelpAction)help.Action!);
        return root;
    }

    /// <summary>
    /// The library's help, except that a command list shows the first line of each command's description (its summary);
    /// the command's own help shows the whole description.
    /// </summary>
    private sealed class SummaryListingHelp(HelpAction help) : SynchronousCommandLineAction
    {
        // As the library's help: asking for help never fails on a missing or bad option.
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var subcommands = parseResult.CommandResult.Command.Subcommands;
            var full = subcommands.Select(c => c.Description).ToList();
            foreach (var c in subcommands) c.Description = c.Description?.Split('\n')[0];
            try
            {
                return help.Invoke(parseResult);
            }
            finally
            {
                for (var i = 0; i < subcommands.Count; i++) subcommands[i].Description = full[i];
            }
        }
    }

    /// <summary>Parses and runs a command line; the exit code.</summary>
    public static int Run(string[] args) => Invoke(CreateRoot().Parse(args), Console.Error);

    /// <summary>
    /// Runs one command on its own with <paramref name="argv"/> (what follows its name), for callers in this process:
    /// a usage error throws <see cref="CliException"/> with the parser's message instead of printing it.
    /// </summary>
    public static int RunCommand(Command command, string[] argv)
    {
        var result = command.Parse(argv);
        if (result.Errors.Count > 0) throw new CliException(string.Join("; ", result.Errors.Select(e => e.Message)));
        return result.Invoke(Configuration());
    }

    private static int Invoke(ParseResult result, TextWriter stderr)
    {
        var name = CommandPath(result.CommandResult);
        // Help clears the parse errors (a help request never fails on a missing option); anything else with errors is a usage error.
        if (result.Errors.Count > 0)
        {
            foreach (var e in result.Errors) stderr.WriteLine($"{name}: {e.Message}");
            stderr.WriteLine($"see '{name} --help'");
            return UsageError;
        }
        try
        {
            return result.Invoke(Configuration());
        }
        catch (CliException e)
        {
            stderr.WriteLine($"{name}: {e.Message}");
            return UsageError;
        }
        catch (Exception e) when (CliErrors.IsUserFacing(e))
        {
            stderr.WriteLine($"{name}: {e.Message}");
            return Failure;
        }
    }

    // Exceptions reach Invoke's handlers; the commands that wait (submit, loadtest, train-clip) handle Ctrl+C themselves.
    private static InvocationConfiguration Configuration() => new() { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };

    /// <summary>"tapt prompts train" for the prompts command's train sub-command.</summary>
    private static string CommandPath(CommandResult? r)
    {
        var names = new List<string>();
        for (; r is not null; r = r.Parent as CommandResult) names.Insert(0, r.Command is RootCommand ? "tapt" : r.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>The command line after the (sub-)command's name, as recorded in provenance.</summary>
    public static string ArgumentsOf(ParseResult result)
    {
        var tokens = result.Tokens.ToList();
        var last = tokens.FindLastIndex(t => t.Type == TokenType.Command);
        return string.Join(' ', tokens.Skip(last + 1).Select(t => t.Value));
    }
}
