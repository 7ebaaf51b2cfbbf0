namespace TaptPlatform.Cli;

/// <summary>The command table beyond the core ones; each command lives in Commands/.</summary>
public static partial class CommandRegistry
{
    public static void AddExtraCommands(IDictionary<string, (string Summary, Func<string[], int> Run)> commands)
    {
        foreach (var (name, summary, run) in Extra()) commands[name] = (summary, run);
    }

    private static IEnumerable<(string Name, string Summary, Func<string[], int> Run)> Extra()
    {
        yield break;
    }
}
