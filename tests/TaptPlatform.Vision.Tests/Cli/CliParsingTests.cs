using System.CommandLine;
using TaptPlatform.Cli;

namespace TaptPlatform.Vision.Tests.Cli;

/// <summary>The command line of every command: help, usage errors and their exit code, as the library parses it.</summary>
public sealed class CliParsingTests
{
    /// <summary>Every command and sub-command with the path that reaches it ("prompts train").</summary>
    public static TheoryData<string> CommandPaths() => new(Paths(TaptCli.CreateRoot(), ""));

    private static IEnumerable<string> Paths(Command command, string path) => command.Subcommands.SelectMany(sub =>
    {
        var p = path.Length == 0 ? sub.Name : path + " " + sub.Name;
        return sub.Subcommands.Count == 0 ? [p] : Paths(sub, p);
    });

    [Fact]
    public void Every_command_is_there()
    {
        Assert.Equal(
            ["audit", "bench", "classify", "clip", "erasure start", "erasure status", "erasure verify", "eval", "evaluations create", "evaluations status", "evaluations cancel", "evaluations report", "loadtest", "models register", "models list", "prompts train", "prompts calibrate", "prompts show", "prompts upload", "prompts list", "prompts download", "prompts delete", "samples", "submit", "train-clip", "trainings create", "trainings status", "trainings follow", "trainings cancel", "trainings report", "trainings configure", "zero-shot"],
            Paths(TaptCli.CreateRoot(), "").ToArray());
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public void Help_on_every_command_exits_0_and_lists_its_options(string path)
    {
        var (code, stdout, stderr) = CliTests.Tapt([.. path.Split(' '), "--help"]);
        Assert.True(code == 0, stderr);
        Assert.Equal("", stderr);
        Assert.Contains("Usage:\n  tapt " + path, stdout);
        var command = path.Split(' ').Aggregate((Command)TaptCli.CreateRoot(), (c, name) => c.Subcommands.Single(s => s.Name == name));
        foreach (var option in command.Options.Where(o => o.Name.StartsWith("--", StringComparison.Ordinal)))
            Assert.Contains(option.Name, stdout);
        Assert.NotEmpty(command.Options);
    }

    [Theory]
    [InlineData("--imgae", "clip", "--imgae", "x")]
    [InlineData("--steps", "eval", "--steps", "0")]
    [InlineData("--eps", "eval", "--eps", "2/1")]
    [InlineData("--eps", "samples", "--out", "x", "--eps", "one")]
    [InlineData("--tapt-lr", "prompts", "calibrate", "--tapt-lr", "-1")]
    [InlineData("--batch", "submit", "--server", "http://127.0.0.1:1", "--key", "k", "--vocabulary", "v", "--batch", "1001", "x")]
    [InlineData("--split", "zero-shot", "--split", "validation")]
    [InlineData("--attack", "evaluations", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--attack", "autoattack-plus")]
    [InlineData("--queries", "evaluations", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--queries", "0")]
    [InlineData("--out", "train-clip", "--epochs", "2")]
    [InlineData("--epochs", "trainings", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--model", "m", "--artifact", "a", "--epochs", "0")]
    [InlineData("--design", "trainings", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--model", "m", "--artifact", "a", "--design", "VLX")]
    [InlineData("--eps", "trainings", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--model", "m", "--artifact", "a", "--eps", "17/255")]
    [InlineData("--artifact", "trainings", "create", "--server", "http://x", "--key", "k", "--images", "d", "--vocabulary", "v", "--model", "m")]
    public void Unknown_options_and_bad_values_exit_2_naming_the_option(string option, params string[] args)
    {
        var (code, stdout, stderr) = CliTests.Tapt(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(option, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Theory]
    [InlineData("a photo of a {}.", "--template", "zero-shot")]
    [InlineData("a photo of a {0}.", "--template", "classify")]
    [InlineData("load", "--tenant-prefix", "loadtest", "--server", "http://x", "--operator-key", "k")]
    [InlineData("default", "--config", "submit", "--server", "http://x", "--key", "k", "--vocabulary", "v", "dir")]
    [InlineData("fashion-mnist", "--dataset", "eval")]
    [InlineData("V,VLI,VLJ", "--designs", "bench")]
    public void Text_options_keep_their_defaults(string expected, string option, params string[] args)
    {
        var result = TaptCli.CreateRoot().Parse(args);
        Assert.Empty(result.Errors);
        Assert.Equal(expected, result.GetValue<string>(option));
    }

    [Theory]
    [InlineData(1.0 / 255, "--eps", "eval")]
    [InlineData(4.0 / 255, "--eps", "samples", "--out", "x")]
    [InlineData(0.0035, "--lr", "prompts", "train")]
    public void Number_options_keep_their_defaults(double expected, string option, params string[] args)
    {
        var result = TaptCli.CreateRoot().Parse(args);
        Assert.Empty(result.Errors);
        Assert.Equal(expected, result.GetValue<double>(option));
    }

    [Fact]
    public void Fractions_are_numbers_for_every_number_option()
    {
        Assert.Equal(4.0 / 255, CliOptions.ParseNumber("4/255"));
        Assert.Equal(100.0 / 9, CliOptions.ParseNumber("100/9"));
        Assert.Equal(0.5, CliOptions.ParseNumber("0.5"));
        Assert.Null(CliOptions.ParseNumber("1/0"));
        Assert.Null(CliOptions.ParseNumber("x/2"));
        var eps = CliOptions.Number("--eps", 1.0 / 255, "budget", 0, 1);
        var result = new RootCommand { eps }.Parse(["--eps", "4/255"]);
        Assert.Empty(result.Errors);
        Assert.Equal(4.0 / 255, result.GetValue(eps));
    }
}
