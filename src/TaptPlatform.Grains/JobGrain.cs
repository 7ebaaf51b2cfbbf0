using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Storage;
using Orleans.Utilities;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Slots;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains;

/// <summary>One accepted image of a job (its bytes are the blob <c>jobs/{jobId}/inputs/{index}</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record JobImageEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] string Format,
    [property: Id(2)] long Size,
    [property: Id(3)] string Sha256);

/// <summary>The durable state of a job. Result summaries are keyed by image index: at most one per image.</summary>
[GenerateSerializer]
public sealed class JobGrainState
{
    [Id(0)] public JobDefinition? Definition { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public List<JobImageEntry> Images { get; set; } = [];
    [Id(3)] public Dictionary<int, ImageResult> Results { get; set; } = [];
    [Id(4)] public DateTimeOffset? StartedAt { get; set; }
    [Id(5)] public DateTimeOffset? FinishedAt { get; set; }
}

/// <summary>
/// A classification job bound to one tenant.
/// <para><b>Acknowledged means stored</b>: <see cref="AddImagesAsync"/> writes each image blob, then the job state,
/// and only then returns.</para>
/// <para><b>Exactly one result per image</b>: a result is recorded by creating its blob only if none exists
/// (the first record wins; a recomputation after a crash finds it and adopts it), then adding it to the state's
/// index-keyed results. The result blobs are the source of truth and are stored before a result is reported; the
/// state summarises them and is written every <see cref="JobOptions.StateWriteResults"/> results, on every watchdog
/// tick with unsaved results, and whenever the job's state changes. On activation the state is reconciled with the
/// result blobs, so results recorded after the last state write are adopted, not computed again.</para>
/// <para><b>Inputs pass once</b>: accepted image bytes stay in memory (within the silo's
/// <see cref="JobOptions.InputMemoryBytes"/>) until their image has a result, so dispatching does not read back the
/// blob just written; after a reactivation, or past the budget, images are read from their blobs.</para>
/// <para><b>Resume</b>: while running, a reminder brings the job back after its silo dies, and a keep-alive timer
/// keeps it active. Its dispatcher hands up to <see cref="JobOptions.MaxInFlight"/> images without a result to the
/// model grain and retries, with backoff, whatever fails for lack of an accelerator silo (the job waits until one
/// joins).</para>
/// </summary>
public sealed class JobGrain(
    [PersistentState("job", GrainStorageNames.Jobs)] IPersistentState<JobGrainState> state,
    IArtifactStore store,
    InputMemory inputMemory,
    IOptions<JobOptions> jobOptions,
    TimeProvider clock,
    JobMetrics metrics,
    ILogger<JobGrain> log) : Grain, IJobGrain, IRemindable
{
    private readonly JobOptions _options = jobOptions.Value;
    private readonly ObserverManager<IJobObserver> _observers = new(IJobGrain.ObserverExpiry, log);
    private readonly Dictionary<int, byte[]> _inputs = [];
    private CancellationTokenSource? _dispatchCts;
    private Task? _dispatch;
    private IGrainTimer? _watchdog;
    private Task? _writing;
    private bool _dirty, _saveFailed;
    private int _unsavedResults;
    private string? _waiting;

    private JobSlots? _slots;

    private string JobId => this.GetPrimaryKeyString();
    private JobGrainState S => state.State;
    private JobSlots Slots => _slots ??= new JobSlots(GrainFactory, S.Definition!.TenantId, JobId, _options.SlotLease, clock, log);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (S.Definition is null || S.State != JobState.Running) return;
        using var scope = LogScope();
        await ReconcileResultsAsync(cancellationToken);
        log.LogInformation("Job {Job} resumes: {Results} of {Images} images have a result", JobId, S.Results.Count, S.Images.Count);
        if (S.Results.Count >= S.Images.Count) await CompleteAsync();
        else StartDispatching();
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _dispatchCts?.Cancel();
        ReleaseInputs();
        using var scope = LogScope();
        if (_dirty || _saveFailed || _unsavedResults > 0 || _writing is { IsCompleted: false })
        {
            try
            {
                await SaveAsync();
            }
            catch (Exception e)
            {
                log.LogWarning(e, "Job {Job} could not save its state while deactivating ({Reason}); results stay in blob storage", JobId, reason);
            }
        }
    }

    // ---- the tenant-facing API ---------------------------------------------------------------------------

    public async Task<JobStatus> CreateAsync(JobDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        Identifiers.RequireTenantId(definition.TenantId);
        if (definition.JobId != JobId) throw new TaptRequestException("the definition is for another job id");
        if (S.Definition is { } existing)
        {
            // Idempotent for the same creation (records holding arrays compare by reference, so compare identity).
            if (existing.TenantId == definition.TenantId && existing.CreatedAt == definition.CreatedAt) return Status();
            throw new TaptRequestException($"job id '{JobId}' is already in use");
        }
        definition.Configuration.Validate();
        S.Definition = definition;
        S.State = JobState.Open;
        await SaveAsync();
        using var scope = LogScope();
        log.LogInformation("Job {Job} created for tenant {Tenant}", JobId, definition.TenantId);
        return Status();
    }

    public async Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<JobImage> images)
    {
        var def = Authorize(tenantId);
        if (S.State != JobState.Open) throw new TaptRequestException($"job '{JobId}' is {S.State.ToString().ToLowerInvariant()}: images can be added only while it is open");
        if (images.IsDefaultOrEmpty) return new AddImagesReceipt([], [], S.Images.Count);
        if (S.Images.Count + images.Length > IJobGrain.MaxImages)
            throw new TaptRequestException($"a job holds at most {IJobGrain.MaxImages} images ({S.Images.Count} already, {images.Length} more offered)");

        var rejected = ImmutableArray.CreateBuilder<RejectedImage>();
        var accepted = new List<(int Index, JobImage Image, JobImageEntry Entry)>();
        var next = S.Images.Count;
        foreach (var image in images)
        {
            var name = CleanName(image?.Name, next + accepted.Count);
            if (image?.Content is not { Length: > 0 } content) { rejected.Add(new RejectedImage(name, "Empty: image has no bytes")); continue; }
            try
            {
                var info = ImageProbe.Identify(content, ImageLimits.Default);
                accepted.Add((next + accepted.Count, image, new JobImageEntry(name, info.Format, content.LongLength, Convert.ToHexStringLower(SHA256.HashData(content)))));
            }
            catch (ImageRejectedException e)
            {
                rejected.Add(new RejectedImage(name, $"{e.Reason}: {e.Message}"));
            }
        }

        // Blobs first, then the state that refers to them: an acknowledged image is always stored.
        using (var gate = new SemaphoreSlim(Math.Max(1, _options.UploadParallelism)))
        {
            await Task.WhenAll(accepted.Select(async a =>
            {
                await gate.WaitAsync();
                try
                {
                    await store.PutAsync(def.TenantId, JobId, ArtifactKinds.Inputs, a.Index, BinaryData.FromBytes(a.Image.Content), ContentType(a.Entry.Format));
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
        S.Images.AddRange(accepted.Select(a => a.Entry));
        await SaveAsync();
        foreach (var a in accepted)
            if (inputMemory.TryReserve(a.Image.Content.LongLength)) _inputs[a.Index] = a.Image.Content;
        return new AddImagesReceipt(accepted.Select(a => a.Index).ToImmutableArray(), rejected.ToImmutable(), S.Images.Count);
    }

    public async Task<JobStatus> StartAsync(string tenantId, JobLimits? limits = null)
    {
        Authorize(tenantId);
        switch (S.State)
        {
            case JobState.Running or JobState.Completed:
                return Status();
            case JobState.Cancelled:
                throw new TaptRequestException($"job '{JobId}' was cancelled");
        }
        if (S.Images.Count == 0) throw new TaptRequestException("add at least one image before starting the job");
        using var scope = LogScope();
        await Slots.AcquireAsync(limits ?? JobLimits.None);
        S.State = JobState.Running;
        S.StartedAt = clock.GetUtcNow();
        try
        {
            await SaveAsync();
        }
        catch
        {
            // Not started: memory says what storage says, and the slots go back.
            S.State = JobState.Open;
            S.StartedAt = null;
            await Slots.ReleaseAsync();
            throw;
        }
        await EnsureReminderAsync();
        StartDispatching();
        await NotifyProgressAsync();
        log.LogInformation("Job {Job} started with {Count} image(s)", JobId, S.Images.Count);
        return Status();
    }

    public async Task<JobStatus> CancelAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        if (S.State is JobState.Completed or JobState.Cancelled) return Status();
        using var scope = LogScope();
        S.State = JobState.Cancelled;
        S.FinishedAt = clock.GetUtcNow();
        _dispatchCts?.Cancel();
        ReleaseInputs();
        await SaveAsync();
        metrics.JobFinished(def.TenantId, JobState.Cancelled, S.StartedAt, S.FinishedAt.Value);
        log.LogInformation("Job {Job} cancelled: {Counts}", JobId, Counts());
        await StopBackgroundAsync();
        await Slots.ReleaseAsync();
        try
        {
            await ModelGrainFor(def).CancelJobAsync(def.TenantId, JobId);
        }
        catch (Exception e)
        {
            log.LogDebug(e, "Job {Job}: the model grain could not be told about the cancellation", JobId);
        }
        await NotifyProgressAsync();
        return Status();
    }

    public Task<JobStatus> GetStatusAsync(string tenantId)
    {
        Authorize(tenantId);
        return Task.FromResult(Status());
    }

    public Task<ResultPage> GetResultsAsync(string tenantId, int offset, int count)
    {
        Authorize(tenantId);
        if (offset < 0) throw new TaptRequestException("offset must not be negative");
        count = Math.Clamp(count, 0, 1000);
        var ordered = S.Results.Keys.Order().ToList();
        var items = ordered.Skip(offset).Take(count).Select(i => S.Results[i]).ToImmutableArray();
        var next = offset + items.Length < ordered.Count ? offset + items.Length : (int?)null;
        return Task.FromResult(new ResultPage(items, offset, ordered.Count, next));
    }

    public async Task<ImageResultDetail> GetResultDetailAsync(string tenantId, int imageIndex)
    {
        var def = Authorize(tenantId);
        if (!S.Results.ContainsKey(imageIndex)) throw new TaptNotFoundException($"image {imageIndex} of job '{JobId}' has no result");
        var data = await store.GetAsync(def.TenantId, JobId, ArtifactKinds.Results, imageIndex)
            ?? throw new TaptNotFoundException($"the result record of image {imageIndex} is missing");
        return ResultRecords.Deserialize(data);
    }

    public async Task<byte[]> GetInputImageAsync(string tenantId, int imageIndex)
    {
        var def = Authorize(tenantId);
        if (imageIndex < 0 || imageIndex >= S.Images.Count) throw new TaptNotFoundException($"job '{JobId}' has no image {imageIndex}");
        var data = await store.GetAsync(def.TenantId, JobId, ArtifactKinds.Inputs, imageIndex)
            ?? throw new TaptNotFoundException($"the stored input image {imageIndex} is missing");
        return data.ToArray();
    }

    public async Task<string> GetAuditRecordAsync(string tenantId, int imageIndex)
    {
        var def = Authorize(tenantId);
        if (!S.Results.TryGetValue(imageIndex, out var r) || !r.Flagged) throw new TaptNotFoundException($"image {imageIndex} of job '{JobId}' was not flagged");
        var data = await store.GetAsync(def.TenantId, JobId, ArtifactKinds.Audit, imageIndex)
            ?? throw new TaptNotFoundException($"the audit record of image {imageIndex} is missing");
        return data.ToString();
    }

    public async Task<ImmutableArray<ArtifactInfo>> ListArtifactsAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        return [.. await store.ListAsync(def.TenantId, JobId)];
    }

    public Task<bool> SubscribeAsync(string tenantId, IJobObserver observer)
    {
        Authorize(tenantId);
        var known = _observers.Observers.ContainsKey(observer);
        _observers.Subscribe(observer, observer);
        return Task.FromResult(known);
    }

    public Task UnsubscribeAsync(string tenantId, IJobObserver observer)
    {
        Authorize(tenantId);
        _observers.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    public async Task ReportStepAsync(string tenantId, ImageStepProgress progress)
    {
        if (S.Definition?.TenantId != tenantId || progress.JobId != JobId || _observers.Count == 0) return;
        await _observers.Notify(o => o.OnImageStep(progress));
    }

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != Grains.ResumeReminder.Name) return Task.CompletedTask;
        if (S.State == JobState.Running) StartDispatching();
        else return UnregisterReminderAsync();
        return Task.CompletedTask;
    }

    // ---- dispatching --------------------------------------------------------------------------------------

    private void StartDispatching()
    {
        if (S.State != JobState.Running || _dispatch is { IsCompleted: false }) return;
        _dispatchCts?.Dispose();
        _dispatchCts = new CancellationTokenSource();
        _dispatch = DispatchAsync(_dispatchCts.Token);
        _watchdog ??= this.RegisterGrainTimer(WatchdogAsync, new GrainTimerCreationOptions(_options.WatchdogPeriod, _options.WatchdogPeriod)
        {
            Interleave = true,
            KeepAlive = true,
        });
    }

    private async Task WatchdogAsync(CancellationToken ct)
    {
        if (S.State != JobState.Running) return;
        StartDispatching();
        await Slots.RenewIfDueAsync();
        if (_saveFailed || _unsavedResults > 0) await SaveAsync();
    }

    private async Task DispatchAsync(CancellationToken ct)
    {
        var def = S.Definition!;
        using var scope = LogScope();
        // One span per dispatcher pass (normally the job's whole run), the parent of every image's span.
        using var activity = TaptTelemetry.Jobs.StartActivity("tapt.job.dispatch");
        activity?.SetTag(TaptTelemetry.TenantAttribute, def.TenantId);
        activity?.SetTag(TaptTelemetry.JobAttribute, JobId);
        activity?.SetTag(TaptTelemetry.ModelAttribute, def.Configuration.Model);
        var model = ModelGrainFor(def);
        var vocabulary = VocabularyReferences.Of(def.Vocabulary);
        var settings = TuningSettings.From(def.Configuration);
        var pending = new Queue<int>(Enumerable.Range(0, S.Images.Count).Where(i => !S.Results.ContainsKey(i)));
        activity?.SetTag(TaptTelemetry.ImagesAttribute, pending.Count);
        var inFlight = new List<Task>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                while (inFlight.Count < Math.Max(1, _options.MaxInFlight) && pending.TryDequeue(out var index))
                    inFlight.Add(ProcessImageAsync(model, new TuningRequest(def.TenantId, JobId, index, [], vocabulary, settings, def.Seed), ct));
                if (inFlight.Count == 0) break;
                inFlight.Remove(await Task.WhenAny(inFlight));
            }
            if (!ct.IsCancellationRequested && S.State == JobState.Running && S.Results.Count >= S.Images.Count) await CompleteAsync();
            activity?.SetTag(TaptTelemetry.OutcomeAttribute, S.State.ToString().ToLowerInvariant());
        }
        catch (Exception e)
        {
            // The watchdog restarts the dispatcher; whatever has a result keeps it.
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            log.LogError(e, "Job {Job}: the dispatcher stopped", JobId);
        }
    }

    /// <summary>Gets one image a result: retries transient failures without limit, permanent ones up to MaxAttempts.</summary>
    private async Task ProcessImageAsync(IModelGrain model, TuningRequest template, CancellationToken ct)
    {
        var index = template.ImageIndex;
        using var activity = TaptTelemetry.Jobs.StartActivity("tapt.job.image");
        activity?.SetTag(TaptTelemetry.TenantAttribute, template.TenantId);
        activity?.SetTag(TaptTelemetry.JobAttribute, JobId);
        activity?.SetTag(TaptTelemetry.ImageAttribute, index);
        var delay = _options.RetryDelay;
        var permanentFailures = 0;
        while (!ct.IsCancellationRequested && !S.Results.ContainsKey(index))
        {
            try
            {
                if (!_inputs.TryGetValue(index, out var image))
                {
                    var stored = await store.GetAsync(S.Definition!.TenantId, JobId, ArtifactKinds.Inputs, index, ct);
                    if (stored is null)
                    {
                        await RecordAsync(index, null, "the stored input image is missing");
                        return;
                    }
                    image = stored.ToArray();
                }
                activity?.AddEvent(new ActivityEvent("tune"));
                var outcome = await model.TuneAsync(template with { Image = image });
                if (ct.IsCancellationRequested) return;
                await RecordAsync(index, outcome.Rejection is null ? outcome : null, outcome.Rejection is null ? null : "image rejected: " + outcome.Rejection);
                await SetWaitingAsync(null);
                return;
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (TuningFailedException e) when (!e.Transient)
            {
                if (++permanentFailures >= _options.MaxAttempts)
                {
                    await RecordAsync(index, null, e.Message);
                    return;
                }
            }
            catch (TaptRequestException e)
            {
                await RecordAsync(index, null, e.Message);
                return;
            }
            catch (Exception e)
            {
                // No accelerator silo (placement fails), the model's silo died, storage is down, a timeout: wait and try again.
                activity?.AddEvent(new ActivityEvent("retry", tags: new ActivityTagsCollection { ["exception.type"] = e.GetType().Name }));
                log.LogDebug(e, "Job {Job}: image {Index} waits ({Error})", JobId, index, e.Message);
                await SetWaitingAsync(WaitReasons.For(e));
            }
            try
            {
                await Task.Delay(delay, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxRetryDelay.Ticks));
        }
    }

    /// <summary>
    /// Records an image's result once: audit blob (if flagged), result blob (create-only), then the in-memory state
    /// and the observers; the state is written with the next batch of results (see <see cref="JobOptions.StateWriteResults"/>).
    /// </summary>
    private async Task RecordAsync(int index, TuningOutcome? outcome, string? error)
    {
        if (S.Results.ContainsKey(index)) return;
        var def = S.Definition!;
        var entry = S.Images[index];
        var summary = ResultRecords.Summarize(index, entry.Name, outcome, error, def, clock.GetUtcNow());
        Activity.Current?.SetTag(TaptTelemetry.OutcomeAttribute, summary.Succeeded ? summary.Flagged ? "flagged" : "succeeded" : "failed");
        var detail = new ImageResultDetail(summary, outcome);
        if (summary.Flagged)
            await store.PutAsync(def.TenantId, JobId, ArtifactKinds.Audit, index, ResultRecords.AuditRecord(def, entry, index, detail), "application/json");
        // Tuned prompts are kept for audits of flagged images only; the result record of every image omits them.
        if (outcome?.TunedPrompts is not null) detail = detail with { Outcome = outcome with { TunedPrompts = null } };
        if (!await store.TryCreateAsync(def.TenantId, JobId, ArtifactKinds.Results, index, ResultRecords.Serialize(detail), "application/json"))
        {
            // An earlier activation recorded this image before it died: its record stands.
            var existing = await store.GetAsync(def.TenantId, JobId, ArtifactKinds.Results, index);
            if (existing is not null) summary = ResultRecords.Deserialize(existing).Summary;
        }
        if (!S.Results.TryAdd(index, summary)) return;
        ForgetInput(index);
        _unsavedResults++;
        metrics.ImageRecorded(def.TenantId, def.Configuration.Model, outcome?.Design ?? def.Configuration.Design, summary);
        if (_observers.Count > 0)
        {
            await _observers.Notify(o => o.OnImageCompleted(new ImageCompleted(JobId, summary)));
            await NotifyProgressAsync();
        }
        // The result blob is the record; the state catches up in batches while running (a late record of a cancelled job at once).
        if (S.State != JobState.Running || _unsavedResults >= Math.Max(1, _options.StateWriteResults)) await SaveAsync();
    }

    private async Task CompleteAsync()
    {
        if (S.State != JobState.Running) return;
        // Slots first: whoever sees the job completed may start the next one.
        await Slots.ReleaseAsync();
        S.State = JobState.Completed;
        S.FinishedAt = clock.GetUtcNow();
        _waiting = null;
        ReleaseInputs();
        await SaveAsync();
        metrics.JobFinished(S.Definition!.TenantId, JobState.Completed, S.StartedAt, S.FinishedAt.Value);
        Activity.Current?.AddEvent(new ActivityEvent("completed"));
        await StopBackgroundAsync();
        await NotifyProgressAsync();
        log.LogInformation("Job {Job} completed: {Counts}", JobId, Counts());
    }

    private async Task StopBackgroundAsync()
    {
        _watchdog?.Dispose();
        _watchdog = null;
        await UnregisterReminderAsync();
    }

    private async Task ReconcileResultsAsync(CancellationToken ct)
    {
        var def = S.Definition!;
        var added = 0;
        foreach (var index in await store.ListIndicesAsync(def.TenantId, JobId, ArtifactKinds.Results, ct))
        {
            if (index >= S.Images.Count || S.Results.ContainsKey(index)) continue;
            var data = await store.GetAsync(def.TenantId, JobId, ArtifactKinds.Results, index, ct);
            if (data is null) continue;
            S.Results.TryAdd(index, ResultRecords.Deserialize(data).Summary);
            added++;
        }
        if (added > 0)
        {
            log.LogInformation("Job {Job} adopted {Count} result(s) recorded before its previous activation ended", JobId, added);
            await SaveAsync();
        }
    }

    // ---- state, reminders, notifications ------------------------------------------------------------------

    /// <summary>Writes the state; concurrent callers share writes, and each returns after a write that includes its changes.</summary>
    private async Task SaveAsync()
    {
        _dirty = true;
        while (_dirty)
        {
            if (_writing is { IsCompleted: false } inProgress)
            {
                try { await inProgress; } catch { /* the next write retries */ }
                continue;
            }
            _dirty = false;
            _writing = WriteOnceAsync();
            await _writing;
        }
    }

    private async Task WriteOnceAsync()
    {
        // The write serialises the state as it is now: every result recorded so far is in it.
        var including = _unsavedResults;
        _unsavedResults = 0;
        try
        {
            try
            {
                await state.WriteStateAsync();
            }
            catch (InconsistentStateException)
            {
                // Another activation (on a silo declared dead but still running) wrote meanwhile: merge and retry.
                var mine = state.State;
                await state.ReadStateAsync();
                Merge(state.State, mine);
                await state.WriteStateAsync();
            }
            _saveFailed = false;
        }
        catch
        {
            _unsavedResults += including;
            _saveFailed = true;
            throw;
        }
    }

    private void ForgetInput(int index)
    {
        if (_inputs.Remove(index, out var bytes)) inputMemory.Release(bytes.LongLength);
    }

    private void ReleaseInputs()
    {
        foreach (var bytes in _inputs.Values) inputMemory.Release(bytes.LongLength);
        _inputs.Clear();
    }

    private static void Merge(JobGrainState stored, JobGrainState mine)
    {
        stored.Definition ??= mine.Definition;
        if (mine.Images.Count > stored.Images.Count) stored.Images = mine.Images;
        foreach (var (i, r) in mine.Results) stored.Results.TryAdd(i, r);
        if (Rank(mine.State) > Rank(stored.State)) stored.State = mine.State;
        stored.StartedAt ??= mine.StartedAt;
        stored.FinishedAt ??= mine.FinishedAt;
        static int Rank(JobState s) => s switch { JobState.Open => 0, JobState.Running => 1, _ => 2 };
    }

    /// <summary>The tenant and job of every log line written inside it (structured: TenantId, JobId).</summary>
    private IDisposable? LogScope() => log.BeginScope("Tenant {TenantId} job {JobId}", S.Definition?.TenantId, JobId);

    private Task EnsureReminderAsync() => Grains.ResumeReminder.EnsureAsync(this, log, $"Job {JobId}");

    private Task UnregisterReminderAsync() => Grains.ResumeReminder.RemoveAsync(this, log, $"Job {JobId}");

    private async Task SetWaitingAsync(string? waiting)
    {
        if (_waiting == waiting) return;
        // Transitions only: one line when the job starts waiting and one when it dispatches again.
        if (waiting is null) log.LogInformation("Job {Job} dispatches again after waiting ({Waiting})", JobId, _waiting);
        else if (_waiting is null) log.LogInformation("Job {Job} waits: {Waiting}", JobId, waiting);
        _waiting = waiting;
        await NotifyProgressAsync();
    }

    private async Task NotifyProgressAsync()
    {
        if (_observers.Count == 0) return;
        var progress = new JobProgress(JobId, S.State, Counts(), _waiting);
        await _observers.Notify(o => o.OnJobProgress(progress));
    }

    private IModelGrain ModelGrainFor(JobDefinition def) =>
        GrainFactory.GetGrain<IModelGrain>(ModelGrain.KeyFor(def.Configuration.Model, JobId, _options.ModelShards));

    private JobDefinition Authorize(string tenantId) =>
        S.Definition is { } d && string.Equals(d.TenantId, tenantId, StringComparison.Ordinal)
            ? d
            : throw new TaptNotFoundException($"job '{JobId}' not found");

    private JobCounts Counts()
    {
        int ok = 0, failed = 0, flagged = 0;
        foreach (var r in S.Results.Values)
        {
            if (r.Succeeded) ok++; else failed++;
            if (r.Flagged) flagged++;
        }
        return new JobCounts(S.Images.Count, ok, failed, flagged);
    }

    private JobStatus Status()
    {
        var d = S.Definition!;
        return new JobStatus(JobId, d.TenantId, d.Name, S.State, Counts(), d.Vocabulary.Name, d.Vocabulary.Version,
            d.Configuration.Name, d.Configuration.Version, d.Configuration.Model, d.Seed, d.CreatedAt, S.StartedAt, S.FinishedAt,
            S.State == JobState.Running ? _waiting : null);
    }

    private static string CleanName(string? name, int index)
    {
        var n = new string((name ?? "").Where(c => !char.IsControl(c)).ToArray()).Trim();
        if (n.Length > 256) n = n[..256];
        return n.Length == 0 ? $"image-{index.ToString(CultureInfo.InvariantCulture)}" : n;
    }

    private static string ContentType(string format) => format switch
    {
        "PNG" => "image/png",
        "JPEG" => "image/jpeg",
        "WEBP" => "image/webp",
        "BMP" => "image/bmp",
        "GIF" => "image/gif",
        _ => "application/octet-stream",
    };
}
