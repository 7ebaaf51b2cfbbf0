using TaptPlatform.Cli.Progress;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// The load test's progress display: the submission window (seconds of <c>--duration</c>), then the drain (live results
/// of the images accepted). A timer samples the counts once a second.
/// </summary>
internal sealed class LoadProgress : IDisposable
{
    private readonly TextWriter _log;
    private readonly DateTimeOffset _submitUntil;
    private readonly TimeSpan _duration;
    private readonly Func<(int Jobs, int Results, int Accepted)> _counts;
    private readonly Lock _gate = new();
    private readonly Timer _timer;
    private CliProgress _phase;
    private bool _draining, _disposed;

    public LoadProgress(TextWriter log, DateTimeOffset submitUntil, TimeSpan duration, Func<(int Jobs, int Results, int Accepted)> counts)
    {
        _log = log;
        _submitUntil = submitUntil;
        _duration = duration;
        _counts = counts;
        _phase = CliProgress.Start("loadtest: submitting", "s", log);
        _timer = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    private void Sample()
    {
        lock (_gate)
        {
            if (_disposed) return;
            var (jobs, results, accepted) = _counts();
            var left = _submitUntil - DateTimeOffset.UtcNow;
            if (left > TimeSpan.Zero)
            {
                _phase.Report((long)(_duration - left).TotalSeconds, (long)_duration.TotalSeconds, $"{jobs} jobs, {results} results live");
                return;
            }
            if (!_draining)
            {
                _phase.Report((long)_duration.TotalSeconds, (long)_duration.TotalSeconds, $"{jobs} jobs, {results} results live");
                _phase.Dispose();
                _phase = CliProgress.Start("loadtest: draining", "results", _log);
                _draining = true;
            }
            _phase.Report(results, accepted, $"{jobs} jobs");
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        lock (_gate)
        {
            if (_disposed) return;
            Sample();
            _disposed = true;
            _phase.Dispose();
        }
    }
}
