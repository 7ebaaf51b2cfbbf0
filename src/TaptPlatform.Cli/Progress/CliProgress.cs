using System.Globalization;
using System.Text;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace TaptPlatform.Cli.Progress;

/// <summary>
/// The progress display of every long command, on stderr only: a live Spectre.Console bar (description, bar, counts,
/// elapsed and remaining time) when stderr is an interactive terminal; otherwise plain lines such as
/// <c>eval: 48/500 images (9.6%), 12.3 s elapsed, ETA 1m40s</c>, at most one per <see cref="PlainInterval"/> plus the final one.
/// Reports may come from any thread; the work itself stays on the caller's thread (the live display renders on its own).
/// </summary>
public sealed class CliProgress : IDisposable
{
    public static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(5);

    private readonly string _label;
    private readonly string _unit;
    private readonly TextWriter _stderr;
    private readonly TimeProvider _clock;
    private readonly long _started;
    private readonly Lock _gate = new();
    private readonly LiveBar? _live;
    private long _done, _total;
    private string? _detail;
    private TimeSpan? _lastPrinted;
    private bool _reported, _currentPrinted, _disposed;

    private CliProgress(string label, string unit, TextWriter stderr, TimeProvider clock, bool interactive)
    {
        _label = label;
        _unit = unit;
        _stderr = stderr;
        _clock = clock;
        _started = clock.GetTimestamp();
        if (interactive) _live = LiveBar.TryStart(label, unit, stderr);
        Log = new LineWriter(WriteLine);
    }

    /// <summary>Starts a display on the process's stderr, live when it is an interactive terminal.</summary>
    public static CliProgress Start(string label, string unit) => new(label, unit, Console.Error, TimeProvider.System, IsInteractive(Console.Error));

    /// <summary>Starts a display on <paramref name="stderr"/>: live only when that is the process's interactive terminal.</summary>
    public static CliProgress Start(string label, string unit, TextWriter stderr, TimeProvider? clock = null) =>
        new(label, unit, stderr, clock ?? TimeProvider.System, IsInteractive(stderr));

    /// <summary>Live display only on the process's own stderr when it is a terminal (not redirected, not CI, not a dumb terminal).</summary>
    public static bool IsInteractive(TextWriter stderr) =>
        ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected
        && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"))
        && Environment.GetEnvironmentVariable("TERM") is not "dumb";

    /// <summary>Whether this display renders live (no plain lines).</summary>
    public bool IsLive => _live is not null;

    /// <summary>Lines written here appear above the live display (or as they are on stderr): for library code that logs.</summary>
    public TextWriter Log { get; }

    /// <summary><paramref name="done"/> of <paramref name="total"/> units (a total of 0: unknown); <paramref name="detail"/> follows the counts.</summary>
    public void Report(long done, long total, string? detail = null)
    {
        lock (_gate)
        {
            if (_disposed) return;
            _done = done;
            _total = total;
            _detail = detail;
            _reported = true;
            _currentPrinted = false;
            if (_live is not null)
            {
                _live.Update(done, total, detail);
                return;
            }
            var now = Elapsed;
            var finished = total > 0 && done >= total;
            if (_lastPrinted is { } last && now - last < PlainInterval && !finished) return;
            Print(now);
        }
    }

    /// <summary>A message line above the display.</summary>
    public void WriteLine(string line)
    {
        lock (_gate)
        {
            if (_live is not null && !_disposed) _live.WriteLine(line);
            else _stderr.WriteLine(line);
        }
    }

    /// <summary>Ends the display: the live bar stays at its last state; plain output gets the final line if it was not printed.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_live is not null) _live.Stop();
            else if (_reported && !_currentPrinted) Print(Elapsed);
        }
    }

    private TimeSpan Elapsed => _clock.GetElapsedTime(_started);

    private void Print(TimeSpan now)
    {
        _lastPrinted = now;
        _currentPrinted = true;
        _stderr.WriteLine(Line(_label, _unit, _done, _total, now, _detail));
    }

    /// <summary>"eval: 48/500 images (9.6%), 12.3 s elapsed, ETA 1m40s, detail".</summary>
    public static string Line(string label, string unit, long done, long total, TimeSpan elapsed, string? detail)
    {
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        s.Append(inv, $"{label}: {done}");
        if (total > 0) s.Append(inv, $"/{total} {unit} ({100.0 * done / total:0.0}%)");
        else s.Append(inv, $" {unit}");
        s.Append(inv, $", {elapsed.TotalSeconds:0.0} s elapsed");
        if (total > 0 && done < total) s.Append(", ETA ").Append(done > 0 ? Duration(elapsed * ((double)(total - done) / done)) : "?");
        if (!string.IsNullOrEmpty(detail)) s.Append(", ").Append(detail);
        return s.ToString();
    }

    /// <summary>"45s", "1m40s", "2h05m".</summary>
    public static string Duration(TimeSpan t) => t.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}h{t.Minutes:00}m")
        : t.TotalMinutes >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes}m{t.Seconds:00}s")
        : string.Create(CultureInfo.InvariantCulture, $"{Math.Ceiling(t.TotalSeconds):0}s");

    /// <summary>A Spectre.Console progress display rendered by its own thread until <see cref="Stop"/>.</summary>
    private sealed class LiveBar
    {
        private readonly IAnsiConsole _console;
        private readonly ManualResetEventSlim _stop = new();
        private readonly string _label;
        private ProgressTask? _task;
        private Thread? _thread;

        private LiveBar(IAnsiConsole console, string label)
        {
            _console = console;
            _label = label;
        }

        public static LiveBar? TryStart(string label, string unit, TextWriter stderr)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr), Interactive = InteractionSupport.Yes });
            var bar = new LiveBar(console, label);
            using var ready = new ManualResetEventSlim();
            bar._thread = new Thread(() =>
            {
                try
                {
                    console.Progress().AutoClear(false)
                        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                            new CountColumn(unit), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                        .Start(ctx =>
                        {
                            bar._task = ctx.AddTask(Markup.Escape(label), autoStart: true, maxValue: 1);
                            bar._task.IsIndeterminate = true;
                            ready.Set();
                            bar._stop.Wait();
                            ctx.Refresh();
                        });
                }
                finally
                {
                    ready.Set();
                }
            })
            { IsBackground = true, Name = "tapt-progress" };
            bar._thread.Start();
            ready.Wait();
            return bar._task is null ? null : bar;
        }

        public void Update(long done, long total, string? detail)
        {
            var task = _task!;
            task.Description = Markup.Escape(string.IsNullOrEmpty(detail) ? _label : $"{_label} ({detail})");
            task.IsIndeterminate = total <= 0;
            task.MaxValue = Math.Max(1, total);
            task.Value = Math.Min(done, task.MaxValue);
        }

        public void WriteLine(string line) => _console.WriteLine(line);

        public void Stop()
        {
            _task?.StopTask();
            _stop.Set();
            _thread?.Join();
        }
    }

    /// <summary>"48/500 images".</summary>
    private sealed class CountColumn(string unit) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.IsIndeterminate ? "" : string.Create(CultureInfo.InvariantCulture, $"{task.Value:0}/{task.MaxValue:0} {unit}"));
    }

    /// <summary>Collects written text into lines for <see cref="CliProgress.WriteLine"/>.</summary>
    private sealed class LineWriter(Action<string> writeLine) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (value == '\n')
            {
                writeLine(_line.ToString().TrimEnd('\r'));
                _line.Clear();
            }
            else _line.Append(value);
        }
    }
}
