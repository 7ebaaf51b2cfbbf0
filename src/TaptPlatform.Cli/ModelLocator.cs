namespace TaptPlatform.Cli;

/// <summary>Finds the model directory: the option, $TAPT_MODEL, or the shipped default model.</summary>
public static class ModelLocator
{
    public const string DefaultModelName = "fashion-clip-small";

    public static string Resolve(string? option)
    {
        if (option is not null)
            return Directory.Exists(option) ? option : throw new CliException($"model directory not found: {option}");
        var env = Environment.GetEnvironmentVariable("TAPT_MODEL");
        if (!string.IsNullOrEmpty(env)) return env;
        return Shipped() ?? throw new CliException($"no --model given and the default model models/{DefaultModelName} was not found");
    }

    /// <summary>The shipped default model's directory (models/fashion-clip-small above the executable or the working directory), or null.</summary>
    public static string? Shipped()
    {
        foreach (var root in Roots())
        {
            var candidate = Path.Combine(root, "models", DefaultModelName);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        return null;
    }

    /// <summary>The executable's folder and its parents, then the working directory and its parents.</summary>
    private static IEnumerable<string> Roots()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent) yield return d.FullName;
    }
}
