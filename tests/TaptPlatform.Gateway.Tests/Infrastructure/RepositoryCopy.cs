using System.Diagnostics;

namespace TaptPlatform.Gateway.Tests.Infrastructure;

/// <summary>
/// A fresh copy of the repository, as a clean clone would have it: the files git tracks plus new ones it does not
/// ignore (so a change under test is included), without builds, data or logs. The installed tools (<c>.tools</c>:
/// Azurite) are linked, not copied: they are what <c>./test.sh</c> or <c>./run.sh</c> installed, not repository content.
/// </summary>
internal static class RepositoryCopy
{
    /// <summary>The repository root: the nearest folder above the test binaries holding run.sh and the solution.</summary>
    public static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "run.sh")) && File.Exists(Path.Combine(dir.FullName, "TaptPlatform.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no repository (run.sh, TaptPlatform.sln) above {AppContext.BaseDirectory}");
    }

    public static void Make(string root, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var relative in Files(root))
        {
            var source = Path.Combine(root, relative);
            if (!File.Exists(source)) continue;   // deleted in the work tree, not yet in the index
            var destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(source, destination);
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(destination, File.GetUnixFileMode(source));   // scripts stay executable
        }
        var tools = Path.Combine(root, ".tools");
        if (Directory.Exists(tools)) Directory.CreateSymbolicLink(Path.Combine(target, ".tools"), tools);
    }

    private static IEnumerable<string> Files(string root)
    {
        var info = new ProcessStartInfo("git", ["-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var git = Process.Start(info) ?? throw new InvalidOperationException("git did not start");
        var output = git.StandardOutput.ReadToEnd();
        git.WaitForExit();
        if (git.ExitCode != 0) throw new InvalidOperationException($"git ls-files failed in {root}: {git.StandardError.ReadToEnd()}");
        return output.Split('\0', StringSplitOptions.RemoveEmptyEntries);
    }
}
