// Longer than 400 lines because the grain answers every call of an evaluation's life (create, images, start, cancel,
// reads, outcomes, erasure), each a few lines of authorisation and state; its mechanics live in JobParts/ and Slots/.
using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Slots;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>
/// A robustness evaluation bound to one tenant. Images (with labels) are stored as blobs before they are acknowledged; once
/// started, each ε is a chain of units (one batch each, carrying the random streams from the batch before), all ε side by
/// side, each unit run by the executor (<see cref="IEvaluationWorkerGrain"/>) of one of the live accelerator silos, whose
/// queue serves tenants in turn; the executor stores the adversarial artifacts and records the unit's outcomes here, and the
/// ε's cursor is saved after each unit. An outcome is kept once (create-only blob, then the state's keyed
/// dictionary; a recomputation after a failure finds the earlier record and keeps it). Progress goes to observers as
/// <see cref="EvaluationProgress"/> (counts of outcomes recorded; <see cref="IEvaluationObserver"/>), through the gateway's SignalR hub. When the silo of a running
/// evaluation dies, its next activation resumes each ε at its saved cursor: while running, a keep-alive timer holds the
/// activation and restarts a run that stopped, and a reminder (every minute) re-activates the grain on another silo
/// after its silo died, so it resumes without anyone polling; the reminder is removed when the evaluation finishes.
/// </summary>
public sealed class EvaluationJobGrain(
    [PersistentState("evaluation", GrainStorageNames.Jobs)] IPersistentState<EvaluationJobState> state,
    IArtifactStore store,
    ImageStaging staging,
    IOptions<JobOptions> jobOptions,
    AcceleratorSilos acceleratorSilos,
    TimeProvider clock,
    ILogger<EvaluationJobGrain> log) : Grain, IEvaluationJobGrain, IRemindable
{
    public const string ReportPath = "results/report.json";
    private readonly Observers<IEvaluationObserver> _observers = new(log);
    private RunningWork? _runningWork;
    private readonly CancellationTokenSource _stop = new();
    public const string CancelledReason = JobEnds.CancelledReason;
    private string? _waiting;

    private BatchedState<EvaluationJobState>? _saved;
    private JobSlots? _slots;
    private ResiliencePipeline? _runs;

    private string JobId => this.GetPrimaryKeyString();

    /// <summary>What an evaluation takes of the tenant's daily images: each image once per ε (that many attacked images).</summary>
    private int ChargedImages => (int)Math.Min(int.MaxValue, (long)S.Images.Count * S.Definition!.Request.Epsilons.Length);
    private EvaluationJobState S => state.State;

    /// <summary>The running slots an evaluation holds, as a job's: counted in the tenant's and the cluster's limits.</summary>
    private JobSlots Slots => _slots ??= new JobSlots(GrainFactory, S.Definition!.TenantId, JobId, jobOptions.Value.SlotLease, clock, log);

    /// <summary>Every write of the state: the run and the outcomes the worker records interleave, and share writes.</summary>
    private BatchedState<EvaluationJobState> Saved => _saved ??= new(state);

    /// <summary>An ε run is retried up to 20 times while no accelerator silo takes it; a refused or permanently failed one not.</summary>
    private ResiliencePipeline Runs => _runs ??= Retries.Create(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), maxPermanentFailures: 1, maxAttempts: 20,
        onRetry: async e =>
        {
            log.LogInformation("Evaluation {Job}: an ε run waits ({Error})", JobId, e.Message);
            _waiting = WaitReasons.For(e);
            await NotifyAsync();
        });

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (S.Definition is null || S.State != JobState.Running) return;
        StartRunning();
        await EnsureReminderAsync();
    }

    public async Task<EvaluationStatus> CreateAsync(EvaluationDefinition definition)
    {
        await LabelledJobCreation.CreateAsync(GrainFactory, JobId, definition.JobId, definition.TenantId, definition.CreatedAt,
            S.Definition is { } e ? (e.TenantId, e.CreatedAt) : null, definition.Vocabulary,
            () =>
            {
                definition.Request.Validate();
                definition.Configuration.Validate();
            },
            async () =>
            {
                S.Definition = definition;
                S.State = JobState.Open;
                await Saved.SaveAsync();
            });
        return Status();
    }

    public async Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<EvaluationImage> images)
    {
        var def = Authorize(tenantId);
        var closed = S.State == JobState.Open ? null
            : $"evaluation '{JobId}' is {S.State.ToString().ToLowerInvariant()}: images can be added only while it is open";
        return await LabelledIntake.AddAsync(staging, store, jobOptions.Value.UploadParallelism, def.TenantId, JobId, def.Vocabulary, images, S.Images, closed,
            (IEvaluationJobGrain.MaxImages, $"an evaluation holds at most {IEvaluationJobGrain.MaxImages} images"), () => Saved.SaveAsync());
    }

    public async Task<EvaluationStatus> StartAsync(string tenantId, JobLimits? limits = null)
    {
        Authorize(tenantId);
        if (S.State is JobState.Running or JobState.Completed) return Status();
        if (S.State == JobState.Cancelled) throw new TaptRequestException($"evaluation '{JobId}' stopped: {S.Error}");
        if (S.Images.Count == 0) throw new TaptRequestException("add at least one labelled image before starting the evaluation");
        var l = limits ?? JobLimits.None;
        await Slots.StartAsync(l,
            // The work is known: images × ε.
            () => DailyImageCharge.ChargeThenSaveAsync(GrainFactory, S.Definition!.TenantId, ChargedImages, l.ImagesPerDay, () =>
            {
                S.State = JobState.Running;
                S.StartedAt = clock.GetUtcNow();
            }, () => Saved.SaveAsync()),
            () => JobEnds.ForgetStart(S));
        await EnsureReminderAsync();
        StartRunning();
        await NotifyAsync();
        return Status();
    }

    public async Task<EvaluationStatus> CancelAsync(string tenantId)
    {
        Authorize(tenantId);
        if (S.State is JobState.Completed or JobState.Cancelled) return Status();
        await JobEnds.CancelAsync(S, _stop, Slots, clock.GetUtcNow(), () => Saved.SaveAsync());   // the worker stops within an attack step
        log.LogInformation("Evaluation {Job} cancelled with {Outcomes} outcome(s) recorded", JobId, S.Outcomes.Count);
        await NotifyAsync();
        await UnregisterReminderAsync();
        return Status();
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (S.Definition?.TenantId != tenantId) return 0;   // another tenant's evaluation, or erased already
        if (S.State is JobState.Open or JobState.Running) await CancelAsync(tenantId);
        await Running.StopAsync();
        var cleared = await TenantData.ClearAsync(state);
        state.State = new EvaluationJobState();
        DeactivateOnIdle();
        return cleared;
    }

    public Task<EvaluationStatus> GetStatusAsync(string tenantId)
    {
        Authorize(tenantId);
        return Task.FromResult(Status());
    }

    public async Task<string> GetReportAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        if (S.State == JobState.Completed && await store.GetFileAsync(def.TenantId, JobId, ReportPath) is { } stored)
            return stored.Content.ToString();
        return BuildReport().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public Task<ImmutableArray<EvaluationImageOutcome>> GetOutcomesAsync(string tenantId)
    {
        Authorize(tenantId);
        return Task.FromResult(S.Outcomes.Values.OrderBy(o => o.EpsilonIndex).ThenBy(o => o.Index).ToImmutableArray());
    }

    public async Task<ImmutableArray<ArtifactInfo>> ListArtifactsAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        return [.. await store.ListAsync(def.TenantId, JobId)];
    }

    public async Task<EvaluationFile> GetArtifactAsync(string tenantId, string path)
    {
        var def = Authorize(tenantId);
        (BinaryData Content, string ContentType)? file;
        try
        {
            file = await store.GetFileAsync(def.TenantId, JobId, path);
        }
        catch (ArgumentException e)
        {
            throw new TaptRequestException(e.Message);
        }
        if (file is not { } f) throw new TaptNotFoundException($"evaluation '{JobId}' has no artifact '{path}'");
        return new EvaluationFile(f.Content.ToArray(), f.ContentType);
    }

    public Task<bool> SubscribeAsync(string tenantId, IEvaluationObserver observer)
    {
        Authorize(tenantId);
        return Task.FromResult(_observers.Subscribe(observer));
    }

    public Task UnsubscribeAsync(string tenantId, IEvaluationObserver observer)
    {
        Authorize(tenantId);
        _observers.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    public async Task RecordOutcomesAsync(string tenantId, ImmutableArray<EvaluationImageOutcome> outcomes)
    {
        var def = Authorize(tenantId);
        if (S.State != JobState.Running) return;   // a batch that finished as the evaluation was cancelled: not recorded
        var changed = false;
        foreach (var o in outcomes)
        {
            var key = Key(o.EpsilonIndex, o.Index);
            if (o.Index < 0 || o.Index >= S.Images.Count || o.EpsilonIndex < 0 || o.EpsilonIndex >= def.Request.Epsilons.Length || S.Outcomes.ContainsKey(key)) continue;
            var path = $"results/eps{o.EpsilonIndex.ToString(CultureInfo.InvariantCulture)}/{o.Index.ToString("D5", CultureInfo.InvariantCulture)}.json";
            var record = o;
            if (!await store.PutFileAsync(def.TenantId, JobId, path, BinaryData.FromObjectAsJson(o), "application/json", createOnly: true))
            {
                // An earlier run recorded this outcome before a failure: its record stands.
                if (await store.GetFileAsync(def.TenantId, JobId, path) is { } existing)
                    record = existing.Content.ToObjectFromJson<EvaluationImageOutcome>() ?? o;
            }
            S.Outcomes[key] = record;
            changed = true;
        }
        if (!changed) return;
        await Saved.SaveAsync();
        await NotifyAsync();
    }

    // ---- running -------------------------------------------------------------------------------------------

    public Task ReceiveReminder(string reminderName, TickStatus status) => Running.ReceiveReminderAsync(reminderName);

    private RunningWork Running => _runningWork ??= new RunningWork(this, () => S.Definition is not null && S.State == JobState.Running, RunAsync,
        () => Slots.RenewIfDueAsync(), DelayDeactivation, log, $"Evaluation {JobId}");

    private void StartRunning() => Running.Start();

    private Task EnsureReminderAsync() => Running.EnsureReminderAsync();

    private Task UnregisterReminderAsync() => Running.RemoveReminderAsync();

    private async Task RunAsync()
    {
        var def = S.Definition!;
        using var scope = log.BeginScope("Tenant {TenantId} evaluation {JobId}", def.TenantId, JobId);
        var template = new EvaluationWork(def.TenantId, JobId, def.Configuration, [.. def.Vocabulary.Labels.Select(l => l.Label)], PromptTexts.Of(def.Vocabulary),
            [.. S.Images.Select(i => i.Label)], def.Request, 0, []);
        var batches = EvaluationWorkerGrain.EvaluationOrder(S.Images.Count, def.Request.Seed).Chunk(def.Request.BatchSize).ToArray();
        try
        {
            // The ε run side by side, each a chain of units; the silos' queues interleave them with other tenants' units.
            await Task.WhenAll(Enumerable.Range(0, def.Request.Epsilons.Length).Select(k => RunEpsilonAsync(template with { EpsilonIndex = k }, batches)));
            if (S.State != JobState.Running || _stop.IsCancellationRequested) return;   // cancelled: CancelAsync records it
            if (S.Outcomes.Count < S.Images.Count * def.Request.Epsilons.Length) throw new TuningFailedException("the worker finished without every outcome");
            await Slots.ReleaseAsync();   // first: whoever sees it completed may start the next one
            S.State = JobState.Completed;
            S.FinishedAt = clock.GetUtcNow();
            await store.PutFileAsync(def.TenantId, JobId, ReportPath, BinaryData.FromString(BuildReport().ToJsonString(new JsonSerializerOptions { WriteIndented = true })), "application/json");
            await Saved.SaveAsync();
            log.LogInformation("Evaluation {Job} completed: {Images} image(s) × {Eps} ε", JobId, S.Images.Count, def.Request.Epsilons.Length);
        }
        catch (Exception) when (S.State != JobState.Running || _stop.IsCancellationRequested)
        {
            return;   // cancelled while a unit ran: CancelAsync records it (it may still be giving the slots back)
        }
        catch (Exception e)
        {
            await JobEnds.FailAsync(S, e, Slots, clock.GetUtcNow(), () => Saved.SaveAsync(), log, $"Evaluation {JobId}");
        }
        await NotifyAsync();
        if (S.State != JobState.Running) await UnregisterReminderAsync();
    }

    /// <summary>
    /// One ε: its batches one after another (each unit continues the random streams where the one before left them), each
    /// on an accelerator silo's executor; the cursor is saved after every unit, so a resumed evaluation continues there.
    /// </summary>
    private async Task RunEpsilonAsync(EvaluationWork work, int[][] batches)
    {
        var k = work.EpsilonIndex;
        var cursor = S.Cursors.GetValueOrDefault(k) ?? new EvaluationCursorState(0, null, 0);
        for (var b = cursor.NextBatch; b < batches.Length && S.State == JobState.Running; b++)
        {
            var done = batches[b].Where(i => S.Outcomes.ContainsKey(Key(k, i))).ToImmutableArray();
            var unit = new EvaluationUnit(work with { Skip = done }, b, [.. batches[b]], cursor.State, cursor.EotCalls);
            var context = Retries.Context(_stop.Token);
            try
            {
                var result = await Runs.ExecuteAsync(async (c, u) => await Executor(u).RunAsync(u, c.CancellationToken), context, unit);
                if (S.State != JobState.Running) return;
                cursor = new EvaluationCursorState(b + 1, result.Cursor, result.EotCalls);
                S.Cursors[k] = cursor;
                // The ε's pinning, with its mean seconds per image so far.
                var seconds = S.Outcomes.Values.Where(o => o.EpsilonIndex == k).Select(o => o.Seconds).DefaultIfEmpty(0).Average();
                S.Runs[k] = result.Info with { SecondsPerImage = seconds };
                _waiting = null;
                await Saved.SaveAsync();
            }
            finally
            {
                Retries.Return(context);
            }
        }
    }

    /// <summary>
    /// The executor of a live accelerator silo for a unit, spreading an evaluation's units over all of them (picked again
    /// on every attempt, so a unit whose silo died goes to another).
    /// </summary>
    private IEvaluationWorkerGrain Executor(EvaluationUnit unit)
    {
        var silos = acceleratorSilos.Current();
        if (silos.Count == 0) throw new TuningFailedException("no accelerator silo is up", transient: true);
        var spread = (uint)StringComparer.Ordinal.GetHashCode(JobId) + (uint)unit.Work.EpsilonIndex + (uint)unit.Batch;
        return GrainFactory.GetGrain<IEvaluationWorkerGrain>(silos[(int)(spread % (uint)silos.Count)].ToParsableString());
    }

    private System.Text.Json.Nodes.JsonObject BuildReport() =>
        RobustnessReportBuilder.Build(Status(), S.Definition!, S.Images.Select(i => i.Name).ToArray(), S.Outcomes.Values, S.Runs);

    private async Task NotifyAsync()
    {
        if (_observers.Count == 0) return;
        var s = Status();
        var progress = new EvaluationProgress(JobId, s.State, s.OutcomesTotal, s.OutcomesRecorded, s.Error ?? s.Waiting);
        await _observers.Notify(o => o.OnEvaluationProgress(progress));
    }

    private static string Key(int epsilonIndex, int index) => string.Create(CultureInfo.InvariantCulture, $"{epsilonIndex}:{index}");

    private EvaluationDefinition Authorize(string tenantId) =>
        S.Definition is { } d && d.TenantId == tenantId ? d : throw new TaptNotFoundException($"evaluation '{JobId}' not found");

    private EvaluationStatus Status()
    {
        var d = S.Definition ?? throw new TaptNotFoundException($"evaluation '{JobId}' not found");
        return new EvaluationStatus(JobId, d.TenantId, d.Request.Name, S.State, S.Images.Count, S.Outcomes.Count, S.Images.Count * d.Request.Epsilons.Length,
            d.Configuration.Model, d.Vocabulary.Name, d.Vocabulary.Version, d.Configuration.Name, d.Configuration.Version, d.Request,
            d.CreatedAt, S.StartedAt, S.FinishedAt, S.Error, _waiting, EvaluationCost.Of(d.Request, d.Configuration, 1));
    }
}
