using System.Diagnostics;
using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace TaptPlatform.Vision.Tests.Cli;

/// <summary>Runs the real <c>tapt</c> executable as a user would.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static (int Code, string Out, string Err) Tapt(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tapt.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "tapt did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private string Png(string name, Rgb24 colour, int size = 24)
    {
        var path = Path.Combine(_dir, name);
        using var img = new Image<Rgb24>(size, size, colour);
        img.SaveAsPng(path);
        return path;
    }

    [Fact]
    public void Clip_json_reports_ids_normalised_embeddings_and_scaled_cosine_logits()
    {
        var model = GoldenFiles.Case("tiny-gelu-new-eos");
        var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "expected.json"))).RootElement;
        var text0 = expected.GetProperty("texts")[0].GetString()!;
        var ids0 = expected.GetProperty("input_ids")[0].EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var (code, stdout, stderr) = Tapt("clip", "--model", model, "--image", Png("red.png", new Rgb24(200, 30, 30)),
            "--image", Png("blue.png", new Rgb24(20, 40, 220)), "--label", text0, "--label", "a dress", "--json");
        Assert.True(code == 0, stderr);
        var o = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(ids0, o.GetProperty("input_ids")[0].EnumerateArray().Select(e => e.GetInt32()).ToArray());
        var img = o.GetProperty("image_embeds").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        var txt = o.GetProperty("text_embeds").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        var logits = o.GetProperty("logits_per_image").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        Assert.Equal(2, img.Length);
        Assert.All(img.Concat(txt), v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => x * x)), 4));
        var scale = logits[0][0] / img[0].Zip(txt[0], (a, b) => a * b).Sum();
        for (var i = 0; i < 2; i++)
            for (var j = 0; j < 2; j++)
                Assert.Equal(logits[i][j], scale * img[i].Zip(txt[j], (a, b) => a * b).Sum(), 3);
    }

    [Theory]
    [InlineData("prompts", "train", "--help")]
    [InlineData("prompts", "calibrate", "--model", "x", "--help")]
    [InlineData("submit", "--server", "http://127.0.0.1:1", "-h")]
    public void Help_after_a_sub_command_or_its_options_prints_the_usage_and_exits_0(params string[] args)
    {
        var (code, stdout, stderr) = Tapt(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("Usage:\n  tapt " + args[0], stdout);
        Assert.Equal("", stderr);
    }

    [Fact]
    public void Eval_from_and_sample_count_evaluate_a_disjoint_part_of_the_sample_and_refuse_one_past_its_end()
    {
        string[] common = ["eval", "--split", "test", "--sample", "5", "--seed", "3", "--steps", "1", "--views", "4", "--batch", "5", "--json"];
        var (code, stdout, stderr) = Tapt([.. common, "--from", "3"]);
        Assert.True(code == 0, stderr);
        var o = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(2, o.GetProperty("n").GetInt32());
        Assert.Equal(3, o.GetProperty("from").GetInt32());
        (code, stdout, stderr) = Tapt([.. common, "--from", "1", "--sample-count", "1"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(1, JsonDocument.Parse(stdout).RootElement.GetProperty("n").GetInt32());
        (code, _, stderr) = Tapt([.. common, "--from", "5"]);
        Assert.Equal(2, code);
        Assert.Contains("--from 5 is past the sample's 5 images", stderr);
    }

    [Fact]
    public void Missing_image_gives_a_one_line_error_and_exit_code_2()
    {
        var (code, stdout, stderr) = Tapt("clip", "--model", GoldenFiles.Case("tiny-gelu-new-eos"), "--image", Path.Combine(_dir, "nope.png"), "--label", "x");
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.Contains("image not found", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void Corrupt_image_and_invalid_checkpoint_are_reported_without_a_stack_trace()
    {
        var bad = Path.Combine(_dir, "bad.png");
        File.WriteAllBytes(bad, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var (code, _, stderr) = Tapt("clip", "--model", GoldenFiles.Case("tiny-gelu-new-eos"), "--image", bad, "--label", "x");
        Assert.NotEqual(0, code);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Contains("bad.png", stderr);

        var model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), "{ not json");
        (code, _, stderr) = Tapt("clip", "--model", model, "--image", Png("ok.png", new Rgb24(1, 2, 3)), "--label", "x");
        Assert.Equal(1, code);
        Assert.DoesNotContain("   at ", stderr);
        Assert.Contains("config", stderr);
    }

    [Fact]
    public void Unknown_option_and_unknown_command_are_refused()
    {
        var (code, _, stderr) = Tapt("clip", "--imgae", "x");
        Assert.Equal(2, code);
        Assert.Contains("Unrecognized command or argument '--imgae'", stderr);
        Assert.Equal(2, Tapt("frobnicate").Code);
    }
}
