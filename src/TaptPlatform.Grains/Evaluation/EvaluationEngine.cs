using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Vision;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tuning;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// The evaluation thread of an accelerator silo: one dedicated thread that runs evaluation work units (one batch of images at
/// one ε: attacks and defended predictions) one after another, synchronously, so no TorchSharp work ever crosses an
/// <c>await</c>. The units wait in a <see cref="FairQueue{T}"/> keyed by tenant, so the thread serves the tenants in turn,
/// one unit each; when the queue is full, <see cref="RunAsync{T}"/> refuses (transiently) and the job retries later. Long
/// work (a prompt training epoch) runs in slices of <see cref="Slice"/> (<see cref="RunInSlicesAsync"/>), so the other
/// tenants' units get the thread between them.
/// </summary>
public sealed class EvaluationEngine : IDisposable
{
    private readonly FairQueue<Action> _queue = new(256);
    private readonly Thread _thread;
    private readonly ILogger<EvaluationEngine> _log;
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    /// <remarks>
    /// It takes the model catalog its work runs on, so the container disposes this engine (joining its thread) before the
    /// catalog frees the models: a silo stopped mid-evaluation must not free tensors the thread is still using.
    /// </remarks>
    public EvaluationEngine(IOptions<TuningEngineOptions> options, ModelCatalog catalog, ILogger<EvaluationEngine> log)
    {
        _log = log;
        Catalog = catalog;
        Device = options.Value.Device;
        Slice = options.Value.Slice;
        if (options.Value.TorchThreads > 0) set_num_threads(options.Value.TorchThreads);
        NativeHeap.KeepTensorBuffers();
        _thread = new Thread(Run) { IsBackground = true, Name = "tapt-evaluation" };
        _thread.Start();
        // As the tuning engine: never computing while libtorch's static objects are destroyed at process exit.
        AppDomain.CurrentDomain.ProcessExit += StopAtExit;
    }

    public string Device { get; }

    /// <summary>How long one slice of sliced work holds the thread before the units queued behind it run.</summary>
    public TimeSpan Slice { get; }

    /// <summary>The models the evaluation work runs on.</summary>
    public ModelCatalog Catalog { get; }

    /// <summary>
    /// Runs <paramref name="work"/> on the evaluation thread; completes (asynchronously) with its result. Work cancelled
    /// while it waits in the queue never runs; once running, the work itself checks the token it is given, which is
    /// also cancelled when the engine stops (so a stopping silo does not wait for a long unit to end on its own).
    /// </summary>
    public Task<T> RunAsync<T>(string tenantId, Func<CancellationToken, T> work, CancellationToken ct = default) => Enqueue(tenantId, work, continuation: false, ct);

    /// <summary>
    /// Runs <paramref name="slice"/>, which does at most about <see cref="Slice"/> of the work and returns whether all of it is
    /// done, as one unit after another until it is; each next slice queues behind the units waiting then (the tenants in
    /// turn), and is taken even when the queue is full, since it only continues a unit already admitted.
    /// </summary>
    public async Task RunInSlicesAsync(string tenantId, Func<CancellationToken, bool> slice, CancellationToken ct = default)
    {
        var done = await Enqueue(tenantId, slice, continuation: false, ct);
        while (!done) done = await Enqueue(tenantId, slice, continuation: true, ct);
    }

    private Task<T> Enqueue<T>(string tenantId, Func<CancellationToken, T> work, bool continuation, CancellationToken ct)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Item()
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopping.Token);
            if (ct.IsCancellationRequested)
            {
                tcs.TrySetCanceled(ct);
                return;
            }
            if (_stopping.IsCancellationRequested)
            {
                tcs.TrySetException(new TuningFailedException("the evaluation engine is stopping", transient: true));
                return;
            }
            try { tcs.TrySetResult(work(linked.Token)); }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                tcs.TrySetException(new TuningFailedException("the evaluation engine is stopping", transient: true));
            }
            catch (Exception e) { tcs.TrySetException(e); }
        }
        if (!_queue.TryAdd(tenantId, Item, ignoreCapacity: continuation)) throw new TuningFailedException("the evaluation queue is full (or the engine is stopping)", transient: true);
        return tcs.Task;
    }

    private void Run()
    {
        while (_queue.TryTake(out var item, out _))
        {
            try { item(); }
            catch (Exception e) { _log.LogError(e, "An evaluation work item failed outside its handler"); }
        }
    }

    private void StopAtExit(object? sender, EventArgs e)
    {
        try
        {
            Dispose();
        }
        catch (Exception)
        {
            // Exiting anyway (a logger may be gone already): what mattered is that the threads were told to stop.
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        AppDomain.CurrentDomain.ProcessExit -= StopAtExit;
        _queue.CompleteAdding();
        _stopping.Cancel();
        // The running unit sees the cancellation at its next check; the models it leased outlive this wait either way.
        if (!_thread.Join(TimeSpan.FromMinutes(1))) _log.LogWarning("The evaluation thread did not stop in time");
    }
}
