namespace TaptPlatform.Gateway.Live;

/// <summary>Recent completions per second: completions within the last <see cref="Window"/> over the time observed.</summary>
public sealed class ThroughputMeter(DateTimeOffset since)
{
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(30);

    private readonly Lock _gate = new();
    private readonly Queue<DateTimeOffset> _times = new();
    private DateTimeOffset _since = since;

    /// <summary>Restarts the observation (the job started after the meter was made).</summary>
    public void StartAt(DateTimeOffset since)
    {
        lock (_gate) if (since > _since) _since = since;
    }

    public void Record(DateTimeOffset at)
    {
        lock (_gate)
        {
            _times.Enqueue(at);
            while (_times.Count > 4096) _times.Dequeue();
        }
    }

    /// <summary>Images per second recently, or null before there is enough to say.</summary>
    public double? Rate(DateTimeOffset now)
    {
        lock (_gate)
        {
            while (_times.Count > 0 && now - _times.Peek() > Window) _times.Dequeue();
            var observed = now - _since;
            if (observed > Window) observed = Window;
            if (_times.Count == 0 || observed < TimeSpan.FromMilliseconds(500)) return null;
            return _times.Count / observed.TotalSeconds;
        }
    }
}
