// Longer than 400 lines because the grain answers fifteen calls, each a few lines of authorisation and
// state; the mechanics it composes live in JobParts/ and Slots/.
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;
using TaptPlatform.Grains.Slots;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tenants;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains;

/// <summary>
/// A classification job bound to one tenant, composed of parts that each keep one promise:
/// <see cref="ImageIntake"/> (acknowledged means stored), <see cref="ResultLedger"/> (exactly one result per image; the
/// result blobs are the truth the state summarises and is reconciled with on activation), <see cref="BatchedState{T}"/>
/// (the state written in batches of <see cref="JobOptions.StateWriteResults"/> results, on the watchdog and at every
/// change of state), <see cref="JobInputs"/> (inputs pass once), <see cref="ImageDispatcher"/> (images to the model
/// grain, retried while the job waits for an accelerator silo), <see cref="JobSlots"/> (the running slots its start
/// takes and its end gives back). While running, a reminder brings the job back after its silo dies and a watchdog
/// keeps it active, restarts the dispatcher and renews the slots.
/// </summary>
public sealed class JobGrain(
    [PersistentState("job", GrainStorageNames.Jobs)] IPersistentState<JobGrainState> state,
    IArtifactStore store,
    ImageStaging staging,
    TenantJobIndex jobIndex,
    InputMemory inputMemory,
    IOptions<JobOptions> jobOptions,
    TimeProvider clock,
    JobMetrics metrics,
    ILogger<JobGrain> log) : Grain, IJobGrain, IRemindable, IDispatchedJob
{
    private readonly JobOptions _options = jobOptions.Value;
    private readonly JobObservers _observers = new(log);
    private readonly JobInputs _inputs = new(inputMemory);
    private CancellationTokenSource? _dispatchCts;
    private Task? _dispatch;
    private IGrainTimer? _watchdog;
    private string? _waiting;
    private bool _erased;

    private JobSlots? _slots;
    private ResultLedger? _ledger;

    private string JobId => this.GetPrimaryKeyString();
    private BatchedState<JobGrainState>? _saved;
    private ImageDispatcher? _dispatcher;

    private JobGrainState S => state.State;
    private BatchedState<JobGrainState> Saved => _saved ??= new(state, JobGrainState.Merge) { UnsavedLimit = _options.StateWriteResults };
    private ImageDispatcher Dispatcher => _dispatcher ??= new ImageDispatcher(_options, this, log);
    private ResultLedger Ledger => _ledger ??= new ResultLedger(store, S.Definition!.TenantId, JobId);
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
        _inputs.Clear();
        using var scope = LogScope();
        if (Saved.Pending && !_erased)
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
        return await ImageIntake.DeletingStagedAsync(staging, def.TenantId, JobId, images.IsDefault ? [] : images.Select(i => i?.Staged), async () =>
        {
            if (S.State != JobState.Open) throw new TaptRequestException($"job '{JobId}' is {S.State.ToString().ToLowerInvariant()}: images can be added only while it is open");
            if (images.IsDefaultOrEmpty) return new AddImagesReceipt([], [], S.Images.Count);
            if (S.Images.Count + images.Length > IJobGrain.MaxImages)
                throw new TaptRequestException($"a job holds at most {IJobGrain.MaxImages} images ({S.Images.Count} already, {images.Length} more offered)");

            var (offered, unreadable) = await ImageIntake.LoadAsync(staging, def.TenantId, JobId, [.. images.Select(i => (i?.Name, i?.Content, i?.Staged))]);
            var (accepted, parts) = ImageIntake.Examine(offered, S.Images.Count, unreadable: p => unreadable[p]);
            // Blobs first, then the state that refers to them: an acknowledged image is always stored.
            await ImageIntake.StoreAsync(store, def.TenantId, JobId, accepted, _options.UploadParallelism);
            S.Images.AddRange(accepted.Select(a => new JobImageEntry(a.Name, a.Info.Format, a.Content.LongLength, Convert.ToHexStringLower(SHA256.HashData(a.Content)))));
            await SaveAsync();
            // Large images are not kept: they never travel to the model grain (it reads their blobs), and kept they would
            // hold memory while the job waits to start.
            foreach (var a in accepted)
                if (a.Content.LongLength <= _options.InlineImageBytes) _inputs.TryKeep(a.Index, a.Content);
            return AddImagesReceipt.Of(parts, S.Images.Count);
        });
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
        await Slots.StartAsync(limits ?? JobLimits.None,
            () =>
            {
                S.State = JobState.Running;
                S.StartedAt = clock.GetUtcNow();
                return SaveAsync();
            },
            () =>
            {
                S.State = JobState.Open;
                S.StartedAt = null;
            });
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
        _inputs.Clear();
        await SaveAsync();
        metrics.JobFinished(def.TenantId, JobState.Cancelled, S.StartedAt, S.FinishedAt.Value);
        log.LogInformation("Job {Job} cancelled: {Counts}", JobId, Counts());
        await StopBackgroundAsync();
        await Slots.ReleaseAsync();
        await UnpinAsync();
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

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (S.Definition?.TenantId != tenantId) return 0;   // another tenant's job, or erased already
        if (S.State is JobState.Open or JobState.Running) await CancelAsync(tenantId);
        _erased = true;   // nothing is recorded or saved from here on: a late result must not bring the state back
        await StopBackgroundAsync();
        var cleared = await TenantData.ClearAsync(state);
        state.State = new JobGrainState();
        DeactivateOnIdle();
        return cleared;
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
        Authorize(tenantId);
        if (!S.Results.ContainsKey(imageIndex)) throw new TaptNotFoundException($"image {imageIndex} of job '{JobId}' has no result");
        return await Ledger.GetDetailAsync(imageIndex);
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
        Authorize(tenantId);
        if (!S.Results.TryGetValue(imageIndex, out var r) || !r.Flagged) throw new TaptNotFoundException($"image {imageIndex} of job '{JobId}' was not flagged");
        return await Ledger.GetAuditRecordAsync(imageIndex);
    }

    public async Task<ImmutableArray<ArtifactInfo>> ListArtifactsAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        return [.. await store.ListAsync(def.TenantId, JobId)];
    }

    public Task<bool> SubscribeAsync(string tenantId, IJobObserver observer)
    {
        Authorize(tenantId);
        return Task.FromResult(_observers.Subscribe(observer));
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
        await Saved.SaveIfPendingAsync();
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
        var pending = Enumerable.Range(0, S.Images.Count).Where(i => !S.Results.ContainsKey(i)).ToList();
        activity?.SetTag(TaptTelemetry.ImagesAttribute, pending.Count);
        try
        {
            await Dispatcher.RunAsync(model, pending, index => new TuningRequest(def.TenantId, JobId, index, [], vocabulary, settings, def.Seed), ct);
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

    // ---- what the dispatcher asks of the job ----------------------------------------------------------------

    string IDispatchedJob.JobId => JobId;

    bool IDispatchedJob.HasResult(int index) => S.Results.ContainsKey(index);

    async Task<TuningRequest?> IDispatchedJob.WithImageAsync(TuningRequest template, CancellationToken ct)
    {
        var index = template.ImageIndex;
        // A large image does not travel in a message: the model grain reads its stored blob.
        if (S.Images[index].Size > _options.InlineImageBytes) return template with { ImageStored = true };
        if (_inputs.TryGetValue(index, out var kept)) return template with { Image = kept };
        return await store.GetAsync(S.Definition!.TenantId, JobId, ArtifactKinds.Inputs, index, ct) is { } data ? template with { Image = data.ToArray() } : null;
    }

    Task IDispatchedJob.RecordAsync(TuningReply reply) => RecordAsync(reply);

    Task IDispatchedJob.SetWaitingAsync(string? waiting) => SetWaitingAsync(waiting);

    /// <summary>
    /// Records an image's result once: audit blob (if flagged), result blob (create-only), then the in-memory state
    /// and the observers; the state is written with the next batch of results (see <see cref="JobOptions.StateWriteResults"/>).
    /// </summary>
    private async Task RecordAsync(TuningReply reply)
    {
        var index = reply.ImageIndex;
        if (_erased || S.Results.ContainsKey(index)) return;
        var def = S.Definition!;
        var entry = S.Images[index];
        var outcome = (reply as TuningReply.Tuned)?.Outcome;
        var summary = ResultRecords.Summarize(entry.Name, reply, def, clock.GetUtcNow());
        Activity.Current?.SetTag(TaptTelemetry.OutcomeAttribute, summary.Succeeded ? summary.Flagged ? "flagged" : "succeeded" : "failed");
        summary = await Ledger.RecordAsync(def, entry, summary, outcome);
        if (!S.Results.TryAdd(index, summary)) return;
        var batch = Saved.MarkUnsaved();   // counted before any await, so a concurrent write accounts for it
        _inputs.Forget(index);
        metrics.ImageRecorded(def.TenantId, def.Configuration.Model, outcome?.Design ?? def.Configuration.Design, summary);
        if (_observers.Count > 0)
        {
            await _observers.Notify(o => o.OnImageCompleted(new ImageCompleted(JobId, summary)));
            await NotifyProgressAsync();
        }
        // The result blob is the record; the state catches up in batches while running (a late record of a cancelled job at once).
        if (S.State != JobState.Running) await SaveAsync();
        await batch;
    }

    /// <summary>
    /// Tells the tenant's job index that this job ended, so the versions it pinned may be deleted. A mark that cannot be
    /// written is only logged: the tenant confirms a row that still pins with the job itself before refusing a delete.
    /// </summary>
    private async Task UnpinAsync()
    {
        try
        {
            await jobIndex.MarkEndedAsync(S.Definition!.TenantId, JobId);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Job {Job} could not mark its index row ended", JobId);
        }
    }

    private async Task CompleteAsync()
    {
        if (S.State != JobState.Running) return;
        // Slots first: whoever sees the job completed may start the next one.
        await Slots.ReleaseAsync();
        await UnpinAsync();
        S.State = JobState.Completed;
        S.FinishedAt = clock.GetUtcNow();
        _waiting = null;
        _inputs.Clear();
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

    /// <summary>Adopts the results recorded in blob storage after the last state write (an earlier activation died).</summary>
    private async Task ReconcileResultsAsync(CancellationToken ct)
    {
        var adopted = await Ledger.UnlistedAsync(S.Results, S.Images.Count, ct);
        foreach (var r in adopted) S.Results.TryAdd(r.Index, r);
        if (adopted.Count == 0) return;
        log.LogInformation("Job {Job} adopted {Count} result(s) recorded before its previous activation ended", JobId, adopted.Count);
        await SaveAsync();
    }

    // ---- state, reminders, notifications ------------------------------------------------------------------

    /// <summary>Writes the state; concurrent callers share writes, and each returns after a write that includes its changes.</summary>
    private Task SaveAsync() => Saved.SaveAsync();

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
}
