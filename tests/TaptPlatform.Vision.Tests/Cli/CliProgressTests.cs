using System.Text.Json;
using TaptPlatform.Cli.Progress;

namespace TaptPlatform.Vision.Tests.Cli;

public sealed class CliProgressTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;

        public void Advance(double seconds) => Ticks += (long)(seconds * TimeSpan.TicksPerSecond);
    }

    [Fact]
    public void Without_a_terminal_it_writes_plain_lines_at_most_every_few_seconds_plus_the_final_one()
    {
        var stderr = new StringWriter();
        var clock = new ManualClock();
        using (var progress = CliProgress.Start("eval", "images", stderr, clock))
        {
            Assert.False(progress.IsLive);
            for (var done = 0; done < 500; done += 4)
            {
                progress.Report(done, 500);
                clock.Advance(0.1);
            }
            clock.Advance(0.05);
            progress.Report(500, 500);
        }
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // 12.55 s in all: the first report, one per 5 s, and the final one.
        Assert.Equal(4, lines.Length);
        Assert.Equal("eval: 0/500 images (0.0%), 0.0 s elapsed, ETA ?", lines[0]);
        Assert.Equal("eval: 200/500 images (40.0%), 5.0 s elapsed, ETA 8s", lines[1]);
        Assert.Equal("eval: 500/500 images (100.0%), 12.6 s elapsed", lines[^1]);
    }

    [Fact]
    public void The_last_state_is_printed_when_the_display_ends_before_the_interval()
    {
        var stderr = new StringWriter();
        var clock = new ManualClock();
        using (var progress = CliProgress.Start("zero-shot", "images", stderr, clock))
        {
            progress.Report(0, 100);
            clock.Advance(1);
            progress.Report(40, 100, "batch 2");
            progress.WriteLine("a message");
        }
        Assert.Equal(["zero-shot: 0/100 images (0.0%), 0.0 s elapsed, ETA ?", "a message", "zero-shot: 40/100 images (40.0%), 1.0 s elapsed, ETA 2s, batch 2"],
            stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }

    [Theory]
    [InlineData(45, "45s")]
    [InlineData(100, "1m40s")]
    [InlineData(7500, "2h05m")]
    public void Durations_read_as_hours_minutes_and_seconds(double seconds, string text) =>
        Assert.Equal(text, CliProgress.Duration(TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void A_long_command_writes_its_progress_to_stderr_and_only_its_result_to_stdout()
    {
        var (code, stdout, stderr) = CliTests.Tapt("eval", "--split", "test", "--sample", "2", "--steps", "1", "--views", "4", "--batch", "1", "--json");
        Assert.True(code == 0, stderr);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(stdout).RootElement.ValueKind);   // nothing but the JSON
        Assert.Contains("eval: 2/2 images (100.0%)", stderr);
        Assert.DoesNotContain("\r", stderr);
    }
}
