using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Telemetry;

namespace TaptPlatform.Gateway.Live;

/// <summary>Sends one message to one connection (the hub context in production; a recorder in tests).</summary>
public interface ILiveSender
{
    Task SendAsync(string connectionId, string method, object payload, CancellationToken cancellationToken);
}

/// <summary>
/// The bounded, coalescing buffer between the event bridge and one SignalR connection. Posting never blocks and
/// never allocates without bound, however slowly the connection reads:
/// <list type="bullet">
/// <item>step events keep only the latest step per image (a bounded number of images; the oldest goes first);</item>
/// <item>a final result removes its image's pending step; results queue up to a capacity, past which they are
/// dropped and the job gets a <c>resync</c> (the client re-subscribes and reads a fresh snapshot);</item>
/// <item>job progress keeps only the latest per job.</item>
/// </list>
/// One pump per connection drains the buffer, at most one step message per <see cref="LiveOptions.StepInterval"/>;
/// a send that takes longer than <see cref="LiveOptions.SendTimeout"/> closes the connection.
/// </summary>
public sealed class ConnectionOutbox : IAsyncDisposable
{
    private const int MessageBatch = 100;

    private readonly Lock _gate = new();
    private readonly OrderedDictionary<(string Job, int Image), StepEvent> _steps = new();
    private readonly Queue<ImageCompletedEvent> _results = new();
    private readonly Dictionary<string, JobProgressEvent> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _resync = new(StringComparer.Ordinal);
    private readonly HashSet<string> _jobs = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ILiveSender _sender;
    private readonly LiveOptions _options;
    private readonly GatewayMetrics? _metrics;
    private readonly Action? _abort;
    private readonly ILogger _log;
    private readonly Task _pump;
    private long _coalesced, _dropped, _sent;
    private bool _disposed;

    public ConnectionOutbox(string connectionId, string tenantId, string keyId, ILiveSender sender, LiveOptions options,
        ILogger log, GatewayMetrics? metrics = null, Action? abort = null)
    {
        ConnectionId = connectionId;
        TenantId = tenantId;
        KeyId = keyId;
        _sender = sender;
        _options = options;
        _log = log;
        _metrics = metrics;
        _abort = abort;
        _pump = Task.Run(PumpAsync);
    }

    public string ConnectionId { get; }
    public string TenantId { get; }
    public string KeyId { get; }

    /// <summary>Step events replaced by a later step of the same image, or pushed out, before being sent.</summary>
    public long Coalesced => Interlocked.Read(ref _coalesced);

    /// <summary>Results dropped because the buffer was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Messages sent.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Events waiting (steps + results + progress): never above the configured capacities.</summary>
    public int Pending
    {
        get
        {
            lock (_gate) return _steps.Count + _results.Count + _progress.Count + _resync.Count;
        }
    }

    public IReadOnlyList<string> Jobs
    {
        get
        {
            lock (_gate) return [.. _jobs];
        }
    }

    /// <summary>Follows a job, unless this connection already follows the most it may.</summary>
    public bool TryAddJob(string jobId)
    {
        lock (_gate)
        {
            if (_jobs.Contains(jobId)) return true;
            if (_jobs.Count >= _options.MaxSubscriptionsPerConnection) return false;
            _jobs.Add(jobId);
            return true;
        }
    }

    /// <summary>Stops following a job and forgets its pending events.</summary>
    public void RemoveJob(string jobId)
    {
        lock (_gate)
        {
            _jobs.Remove(jobId);
            foreach (var k in _steps.Keys.Where(k => k.Job == jobId).ToList()) _steps.Remove(k);
            if (_results.Any(r => r.JobId == jobId))
            {
                var keep = _results.Where(r => r.JobId != jobId).ToList();
                _results.Clear();
                foreach (var r in keep) _results.Enqueue(r);
            }
            _progress.Remove(jobId);
            _resync.Remove(jobId);
        }
    }

    public void PostStep(StepEvent step)
    {
        lock (_gate)
        {
            if (!_jobs.Contains(step.JobId)) return;
            var key = (step.JobId, step.ImageIndex);
            if (_steps.TryGetValue(key, out var earlier))
            {
                if (earlier.Step > step.Step) return;   // a late, older step
                _steps[key] = step with { Coalesced = earlier.Coalesced + 1 };
                Interlocked.Increment(ref _coalesced);
                _metrics?.StepsCoalesced(1);
            }
            else
            {
                if (_steps.Count >= _options.StepBufferCapacity)
                {
                    _steps.RemoveAt(0);
                    Interlocked.Increment(ref _coalesced);
                    _metrics?.StepsCoalesced(1);
                }
                _steps.Add(key, step);
            }
        }
        Wake();
    }

    public void PostResult(ImageCompletedEvent result)
    {
        lock (_gate)
        {
            if (!_jobs.Contains(result.JobId)) return;
            _steps.Remove((result.JobId, result.Result.Index));
            if (_results.Count >= _options.ResultBufferCapacity)
            {
                Interlocked.Increment(ref _dropped);
                _metrics?.LiveDropped(1);
                _resync.TryAdd(result.JobId, "the connection fell behind and live results were dropped: subscribe again for a fresh snapshot");
            }
            else
            {
                _results.Enqueue(result);
            }
        }
        Wake();
    }

    /// <summary>Tells the connection to subscribe to the job again for a fresh snapshot (live events of the job were missed).</summary>
    public void PostResync(string jobId, string reason)
    {
        lock (_gate)
        {
            if (!_jobs.Contains(jobId)) return;
            _resync.TryAdd(jobId, reason);
        }
        Wake();
    }

    public void PostProgress(JobProgressEvent progress)
    {
        lock (_gate)
        {
            if (!_jobs.Contains(progress.JobId)) return;
            if (_progress.TryGetValue(progress.JobId, out var earlier) && (earlier.IsFinal || (!progress.IsFinal && earlier.Completed > progress.Completed))) return;
            _progress[progress.JobId] = progress;
        }
        Wake();
    }

    private void Wake()
    {
        lock (_gate)
        {
            if (!_disposed && _wake.CurrentCount == 0) _wake.Release();
        }
    }

    private async Task PumpAsync()
    {
        var ct = _stop.Token;
        try
        {
            while (true)
            {
                await _wake.WaitAsync(ct);
                while (true)
                {
                    List<ResyncEvent> resync;
                    List<StepEvent> steps;
                    List<ImageCompletedEvent> results;
                    List<JobProgressEvent> progress;
                    lock (_gate)
                    {
                        resync = [.. _resync.Select(kv => new ResyncEvent(kv.Key, kv.Value))];
                        steps = [.. _steps.Values];
                        results = [.. _results];
                        progress = [.. _progress.Values];
                        _resync.Clear();
                        _steps.Clear();
                        _results.Clear();
                        _progress.Clear();
                    }
                    if (resync.Count + steps.Count + results.Count + progress.Count == 0) break;
                    foreach (var r in resync) await SendAsync(JobsHubMethods.Resync, r, ct);
                    foreach (var batch in steps.Chunk(MessageBatch)) await SendAsync(JobsHubMethods.Steps, batch, ct);
                    foreach (var batch in results.Chunk(MessageBatch)) await SendAsync(JobsHubMethods.ImagesCompleted, batch, ct);
                    foreach (var p in progress) await SendAsync(JobsHubMethods.JobProgress, p, ct);
                    // Pace step messages: what arrives meanwhile coalesces per image.
                    if (steps.Count > 0 && _options.StepInterval > TimeSpan.Zero) await Task.Delay(_options.StepInterval, ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (SlowConnectionException)
        {
            _log.LogInformation("Live connection {Connection} did not read for {Timeout}; closing it", ConnectionId, _options.SendTimeout);
            _abort?.Invoke();
        }
        catch (Exception e)
        {
            _log.LogWarning(e, "Live connection {Connection}: sending failed; closing it", ConnectionId);
            _abort?.Invoke();
        }
    }

    private async Task SendAsync(string method, object payload, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.SendTimeout);
        try
        {
            await _sender.SendAsync(ConnectionId, method, payload, timeout.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new SlowConnectionException();
        }
        Interlocked.Increment(ref _sent);
        _metrics?.LiveSent(method);
    }

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        await _stop.CancelAsync();
        try
        {
            await _pump.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // A send stuck in a transport that is going away anyway.
        }
        _stop.Dispose();
        _wake.Dispose();
    }

    private sealed class SlowConnectionException : Exception;
}
