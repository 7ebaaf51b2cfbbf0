using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Vision;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Tuning;

/// <summary>
/// The one tuning engine of an accelerator silo: a bounded queue of images and dedicated threads that take
/// compatible images from it in batches and run TAPT on them synchronously (TorchSharp dispose scopes are
/// per thread, so no tensor work ever crosses an <c>await</c>). Models and prompt artifacts are loaded once
/// (<see cref="ModelCatalog"/>) and shared by the threads. When the queue is full, <see cref="EnqueueAsync"/>
/// waits: that is the back-pressure model grains pass on to job grains.
/// </summary>
public sealed class TuningEngine : IDisposable
{
    private readonly TuningEngineOptions _options;
    private readonly ModelCatalog _catalog;
    private readonly ILogger<TuningEngine> _log;
    private readonly Channel<TuningWorkItem> _queue;
    private readonly Thread[] _threads;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, DateTime> _cancelledJobs = new(StringComparer.Ordinal);
    private readonly Device _device;
    private readonly TaptPrecision _precision;
    private readonly TuningMetrics _metrics;
    private readonly bool _ownsMetrics;
    private readonly int[] _carried;
    // One defense per (artifact, settings), the least recently used dropped: each copies the reference statistics to the device.
    private readonly BoundedCache<DefenseKey, TaptDefense> _defenses;
    private long _batches, _images;
    private int _largestBatch, _queued;
    private int _disposed;

    public TuningEngine(IOptions<TuningEngineOptions> options, ModelCatalog catalog, ILogger<TuningEngine> log, TuningMetrics? metrics = null)
    {
        _options = options.Value;
        _options.Validate();
        _catalog = catalog;
        _log = log;
        _ownsMetrics = metrics is null;
        _metrics = metrics ?? new TuningMetrics();
        _carried = new int[_options.Threads];
        _defenses = new BoundedCache<DefenseKey, TaptDefense>("tuning-engine.defenses", long.MaxValue, d => d.DeviceBytes, _options.DefenseCacheEntries);
        Vocabularies = new VocabularyCache(_options.VocabularyCacheBytes);
        _device = ComputeDevice.Parse(_options.Device);
        _precision = TaptPrecisions.TryParse(_options.Precision, out var precision) ? precision : TaptPrecisions.Fastest(_device);
        if (_options.TorchThreads > 0) set_num_threads(_options.TorchThreads);
        NativeHeap.KeepTensorBuffers();
        _queue = Channel.CreateBounded<TuningWorkItem>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = false,
            SingleReader = _options.Threads == 1,
        });
        _threads = Enumerable.Range(0, _options.Threads).Select(i => new Thread(() => Run(i))
        {
            IsBackground = true,
            Name = $"tapt-tuning-{i}",
        }).ToArray();
        _metrics.ObserveQueue(() => Queued, () => Pending);
        foreach (var t in _threads) t.Start();
        // A process that exits without disposing this (a host never disposed) must not leave these threads computing
        // while libtorch's static objects are destroyed: that crashed processes at exit.
        AppDomain.CurrentDomain.ProcessExit += StopAtExit;
        _log.LogInformation("Tuning engine started: {Threads} thread(s) on {Device} in {Precision} (setting {PrecisionSetting}), queue {Capacity}, batches of up to {Batch}",
            _options.Threads, _options.Device, TaptPrecisions.Name(_precision), _options.Precision, _options.QueueCapacity, _options.MaxBatchSize);
    }

    public TuningEngineOptions Options => _options;

    /// <summary>The models this engine's threads run.</summary>
    public ModelCatalog Catalog => _catalog;

    /// <summary>The number format the step runs in (the setting, with "auto" resolved for the device).</summary>
    public TaptPrecision Precision => _precision;

    /// <summary>Vocabularies resolved from the references of tuning requests (model grains fill it).</summary>
    public VocabularyCache Vocabularies { get; }

    /// <summary>The defenses kept for reuse (entries and the device bytes of their reference statistics).</summary>
    public ICacheStatistics DefenseCache => _defenses;
    public long BatchesRun => Interlocked.Read(ref _batches);
    public long ImagesRun => Interlocked.Read(ref _images);
    public int LargestBatch => Volatile.Read(ref _largestBatch);

    /// <summary>Images accepted but not finished (queued or being tuned).</summary>
    public int Pending => Volatile.Read(ref _queued);

    /// <summary>Images waiting for a tuning thread: in the queue, or taken from it and carried to a later batch.</summary>
    public int Queued
    {
        get
        {
            var n = _queue.Reader.Count;
            for (var i = 0; i < _carried.Length; i++) n += Volatile.Read(ref _carried[i]);
            return n;
        }
    }

    /// <summary>Queues an image (waiting while the queue is full) and completes with its outcome.</summary>
    public async Task<TuningReply> EnqueueAsync(TuningWorkItem item)
    {
        try
        {
            await _queue.Writer.WriteAsync(item, _stopping.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            throw new TuningFailedException("the tuning engine is stopping", transient: true);
        }
        Interlocked.Increment(ref _queued);
        try
        {
            return await item.Completion.Task;
        }
        finally
        {
            Interlocked.Decrement(ref _queued);
        }
    }

    /// <summary>Queued images of this job are dropped (their callers see a cancellation) instead of tuned.</summary>
    public void CancelJob(string tenantId, string jobId)
    {
        var now = DateTime.UtcNow;
        _cancelledJobs[TuningWorkItem.JobKeyOf(tenantId, jobId)] = now;
        foreach (var (k, t) in _cancelledJobs)
            if (now - t > TimeSpan.FromHours(6)) _cancelledJobs.TryRemove(k, out _);
    }

    private void Run(int threadIndex)
    {
        var carry = new List<TuningWorkItem>();
        while (true)
        {
            List<TuningWorkItem>? batch;
            try
            {
                batch = Take(carry);
            }
            catch (OperationCanceledException)
            {
                batch = null;
            }
            Volatile.Write(ref _carried[threadIndex], carry.Count);
            if (batch is null) break;
            using var scope = BatchLogScope(batch);
            try
            {
                Process(batch);
            }
            catch (Exception e)
            {
                _log.LogError(e, "Tuning thread {Thread} failed a batch of {Count}", threadIndex, batch.Count);
                var error = e as TuningFailedException ?? new TuningFailedException($"tuning failed: {e.GetType().Name}: {e.Message}");
                foreach (var item in batch)
                    if (item.Completion.TrySetException(error)) _metrics.Image(item.Request.TenantId, item.Model, DesignOf(item), "failed");
            }
        }
        foreach (var item in carry) item.Completion.TrySetException(new TuningFailedException("the tuning engine stopped", transient: true));
    }

    /// <summary>
    /// Blocks until an image is available, then gathers up to <see cref="TuningEngineOptions.MaxBatchSize"/>
    /// images with the same batch key; others are carried to the next pass (at most one batch's worth).
    /// </summary>
    private List<TuningWorkItem>? Take(List<TuningWorkItem> carry)
    {
        TuningWorkItem first;
        if (carry.Count > 0)
        {
            first = carry[0];
            carry.RemoveAt(0);
        }
        else
        {
            while (!_queue.Reader.TryRead(out first!))
            {
                if (!_queue.Reader.WaitToReadAsync(_stopping.Token).AsTask().GetAwaiter().GetResult()) return null;
            }
        }
        var batch = new List<TuningWorkItem> { first };
        for (var i = 0; i < carry.Count && batch.Count < _options.MaxBatchSize;)
        {
            if (carry[i].BatchKey == first.BatchKey) { batch.Add(carry[i]); carry.RemoveAt(i); }
            else i++;
        }
        while (batch.Count < _options.MaxBatchSize && carry.Count < _options.MaxBatchSize && _queue.Reader.TryRead(out var next))
        {
            if (next.BatchKey == first.BatchKey) batch.Add(next);
            else carry.Add(next);
        }
        return batch;
    }

    /// <summary>The tenants and jobs of a batch as a logging scope (a batch may mix jobs that share model and settings).</summary>
    private IDisposable? BatchLogScope(List<TuningWorkItem> batch) =>
        _log.BeginScope("Tuning batch of {Images} image(s) for tenant {TenantId} job {JobId}", batch.Count,
            Distinct(batch, i => i.Request.TenantId), Distinct(batch, i => i.Request.JobId));

    private static string Distinct(IEnumerable<TuningWorkItem> items, Func<TuningWorkItem, string> value) =>
        string.Join(',', items.Select(value).Distinct(StringComparer.Ordinal));

    /// <summary>The design tag of an item before its artifact is known: the one its settings ask for, if any.</summary>
    private static string DesignOf(TuningWorkItem item) => JobMetrics.DesignOf(item.Request.Settings.Design);

    private void Process(List<TuningWorkItem> batch)
    {
        var live = new List<TuningWorkItem>(batch.Count);
        foreach (var item in batch)
        {
            if (_stopping.IsCancellationRequested)
            {
                if (item.Completion.TrySetException(new TuningFailedException("the tuning engine is stopping", transient: true)))
                    _metrics.Image(item.Request.TenantId, item.Model, DesignOf(item), "failed");
            }
            else if (_cancelledJobs.ContainsKey(item.JobKey))
            {
                if (item.Completion.TrySetCanceled()) _metrics.Image(item.Request.TenantId, item.Model, DesignOf(item), "cancelled");
            }
            else live.Add(item);
        }
        if (live.Count == 0) return;

        // One span per batch: a child of the first image's trace, linked to every other image's.
        var first = live[0];
        using var activity = TaptTelemetry.Tuning.StartActivity("tapt.tuning.batch", ActivityKind.Internal, first.ParentContext,
            links: live.Skip(1).Select(i => i.ParentContext).Where(c => c != default && c != first.ParentContext).Distinct()
                .Select(c => new ActivityLink(c)));
        if (activity is not null)
        {
            activity.SetTag(TaptTelemetry.TenantAttribute, Distinct(live, i => i.Request.TenantId));
            activity.SetTag(TaptTelemetry.JobAttribute, Distinct(live, i => i.Request.JobId));
            activity.SetTag(TaptTelemetry.ModelAttribute, first.Model);
            activity.SetTag(TaptTelemetry.ImagesAttribute, live.Count);
        }
        try
        {
            Tune(live, activity);
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
    }

    private void Tune(List<TuningWorkItem> live, Activity? activity)
    {
        var head = live[0];
        using var modelLease = _catalog.Rent(head.Model, _device);          // loads once, outside any dispose scope
        var model = modelLease.Value;
        using var tenantArtifact = ArtifactOf(model, head, out var artifactName, out var artifact);
        var design = artifact.Shape.Design.ToString();
        activity?.SetTag(TaptTelemetry.DesignAttribute, design);
        var options = OptionsFor(model.Name, artifactName, artifact, head.Request.Settings);
        var vocabulary = head.Vocabulary;

        // Decode on this thread (cheap next to tuning); a bad image fails alone.
        var pixels = new List<float[]>(live.Count);
        var accepted = new List<TuningWorkItem>(live.Count);
        foreach (var item in live)
        {
            try
            {
                pixels.Add(model.Preprocessor.Load(item.Request.Image));
                accepted.Add(item);
            }
            catch (ImageRejectedException e)
            {
                if (item.Completion.TrySetResult(new TuningReply.Rejected(item.Request.ImageIndex, $"{e.Reason}: {e.Message}")))
                    _metrics.Image(item.Request.TenantId, model.Name, design, "rejected");
            }
        }
        activity?.SetTag("tapt.images.rejected", live.Count - accepted.Count);
        if (accepted.Count == 0) return;

        using var lease = _defenses.Rent(new DefenseKey(model.Clip, artifact, options), k => new TaptDefense(k.Clip, k.Artifact, k.Options));
        var defense = lease.Value;
        var clock = Stopwatch.StartNew();
        var lastStep = TimeSpan.Zero;
        IReadOnlyList<TaptResult> results;
        using (var scope = NewDisposeScope())
        {
            var x = model.Preprocessor.ToTensor(pixels);
            var inputs = accepted.Select((item, i) => new TaptInput(x[i], item.Request.Seed)).ToList();
            results = defense.Classify(inputs, vocabulary, report =>
            {
                // The first image's report of a step comes right after the step's work for the whole batch.
                if (report.ImageIndex == 0)
                {
                    var now = clock.Elapsed;
                    _metrics.Step(model.Name, design, (now - lastStep).TotalMilliseconds);
                    lastStep = now;
                }
                var item = accepted[report.ImageIndex];
                if (item.OnStep is null) return;
                try
                {
                    item.OnStep(ToMetrics(report));
                }
                catch (Exception e)
                {
                    _log.LogWarning(e, "A step callback failed");
                }
            });
        }
        var batchTime = clock.Elapsed;
        _metrics.Batch(model.Name, design, accepted.Count, batchTime.TotalMilliseconds);
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _images, accepted.Count);
        var largest = _largestBatch;
        while (accepted.Count > largest && Interlocked.CompareExchange(ref _largestBatch, accepted.Count, largest) != largest) largest = _largestBatch;
        _log.LogDebug("Tuned {Count} image(s) of {Model} in {Seconds:F2}s", accepted.Count, model.Name, batchTime.TotalSeconds);

        for (var i = 0; i < accepted.Count; i++)
        {
            var r = results[i];
            var item = accepted[i];
            var d = r.Distances;
            _metrics.ImageTuned(item.Request.TenantId, model.Name, design, r.Seconds * 1000);
            item.Completion.TrySetResult(new TuningReply.Tuned(new TuningOutcome(
                item.Request.ImageIndex, model.Name, model.Checkpoint.Checksum, artifactName, design,
                options.Views, options.Steps, options.LearningRate,
                r.BaselinePrediction, [.. r.BaselineProbabilities],
                r.AptPrediction, [.. r.AptProbabilities],
                r.Prediction, [.. r.Probabilities],
                r.Steps.Select(ToMetrics).ToImmutableArray(),
                d is null ? null : new StatisticsDistanceInfo(d.ToAdversarialReference, d.ToCleanReference, d.ToAttackedImages, d.CloserToAttacked),
                r.Seconds, accepted.Count,
                TunedPrompts: r.TunedPrompts?.ToImmutableDictionary(kv => kv.Key, kv => kv.Value.ToImmutableArray()),
                Precision: TaptPrecisions.Name(options.Precision))));
        }
    }

    /// <summary>
    /// The batch's artifact: the tenant's own (leased from the model's bounded cache for the batch, so it is not disposed
    /// under it) or an operator's beside the model (loaded once, never evicted; no lease).
    /// </summary>
    private static IDisposable? ArtifactOf(LoadedModel model, TuningWorkItem head, out string name, out PromptArtifact artifact)
    {
        if (head.Request.Settings.TenantArtifact(head.Request.TenantId) is not { } reference)
        {
            (name, artifact) = model.Artifact(head.Request.Settings.PromptArtifact);
            return null;
        }
        var file = head.ArtifactFile ?? throw new TuningFailedException($"prompt artifact '{reference.DisplayName}' was not fetched to this silo", transient: true);
        var lease = model.TenantArtifact(reference, file);
        name = reference.DisplayName;
        artifact = lease.Value.Artifact;
        return lease;
    }

    /// <summary>The artifact's test-time settings with the request's overrides; a mismatch or an invalid value fails permanently.</summary>
    private TaptOptions OptionsFor(string model, string artifactName, PromptArtifact artifact, TuningSettings s)
    {
        try
        {
            // Flagged images keep their tuned prompts in the audit record.
            return artifact.SettingsWith(s.Design, s.Views, s.Steps, s.LearningRate) with { ReturnTunedPrompts = true, Precision = _precision };
        }
        catch (ArgumentException e)
        {
            throw new TuningFailedException($"invalid test-time settings for artifact '{artifactName}' of model '{model}': {e.Message}");
        }
    }

    private static StepMetrics ToMetrics(TaptStepReport r) => new(
        r.Step, r.EntropyLoss, r.AlignmentAdversarial, r.AlignmentClean, r.TotalLoss, [.. r.SelectedViews],
        r.TopK.Select(t => new LabelProbability(t.Index, t.Label, t.Probability)).ToImmutableArray());

    /// <summary>Stops taking images, lets the current batches finish, fails what is left (transiently: retry elsewhere).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        AppDomain.CurrentDomain.ProcessExit -= StopAtExit;
        _stopping.Cancel();
        _queue.Writer.TryComplete();
        foreach (var t in _threads)
            if (!t.Join(TimeSpan.FromMinutes(2))) _log.LogWarning("Tuning thread {Thread} did not stop in time", t.Name);
        while (_queue.Reader.TryRead(out var item)) item.Completion.TrySetException(new TuningFailedException("the tuning engine stopped", transient: true));
        _defenses.Dispose();
        Vocabularies.Dispose();
        if (_ownsMetrics) _metrics.Dispose();
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

    /// <summary>Models and artifacts compare by reference (loaded once per silo); settings by value.</summary>
    private sealed record DefenseKey(PromptedClip Clip, PromptArtifact Artifact, TaptOptions Options);
}
