using TaptPlatform.Cli;
using TaptPlatform.Cli.Commands;

// Each command: (summary, runner). Runners return the process exit code.
var commands = new SortedDictionary<string, (string Summary, Func<string[], int> Run)>(StringComparer.Ordinal)
{
    ["clip"] = ("score images against label texts with plain CLIP", ClipCommand.Run),
};
CommandRegistry.AddExtraCommands(commands);

if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
{
    Console.WriteLine("usage: tapt <command> [options]\n\ncommands:");
    foreach (var (name, (summary, _)) in commands) Console.WriteLine($"  {name,-14} {summary}");
    Console.WriteLine("\nRun 'tapt <command> --help' for a command's options.");
    return args.Length == 0 ? 2 : 0;
}
if (!commands.TryGetValue(args[0], out var command))
{
    Console.Error.WriteLine($"tapt: unknown command '{args[0]}' (see 'tapt --help')");
    return 2;
}
// "--help" anywhere after the command (e.g. `tapt prompts train --help`) prints that command's usage, never an option error.
var commandArgs = args[1..].Any(a => a is "--help" or "-h") ? ["--help"] : args[1..];
try
{
    return command.Run(commandArgs);
}
catch (CliException e)
{
    Console.Error.WriteLine($"tapt {args[0]}: {e.Message}");
    return 2;
}
catch (Exception e) when (CliErrors.IsUserFacing(e))
{
    Console.Error.WriteLine($"tapt {args[0]}: {e.Message}");
    return 1;
}
