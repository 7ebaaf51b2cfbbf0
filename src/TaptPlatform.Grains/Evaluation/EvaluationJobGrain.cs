using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;
using TaptPlatform.Grains.Slots;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains.Evaluation;

/// <summary>One accepted labelled image of an evaluation (its bytes are the blob <c>jobs/{jobId}/inputs/{index}</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record EvaluationImageEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] int Label,
    [property: Id(2)] string Format);

[GenerateSerializer]
public sealed class EvaluationJobState
{
    [Id(0)] public EvaluationDefinition? Definition { get; set; }
    [Id(1)] public JobState State { get; set; }
    [Id(2)] public List<EvaluationImageEntry> Images { get; set; } = [];
    /// <summary>Outcomes keyed "{ε index}:{image index}": at most one each.</summary>
    [Id(3)] public Dictionary<string, EvaluationImageOutcome> Outcomes { get; set; } = [];
    [Id(4)] public Dictionary<int, EvaluationRunInfo> Runs { get; set; } = [];
    [Id(5)] public DateTimeOffset? StartedAt { get; set; }
    [Id(6)] public DateTimeOffset? FinishedAt { get; set; }
    [Id(7)] public string? Error { get; set; }
}

/// <summary>
/// A robustness evaluation bound to one tenant. Images (with labels) are stored as blobs before they are acknowledged; once
/// started, each ε is run on an accelerator silo by <see cref="IEvaluationWorkerGrain"/>, which stores the adversarial
/// artifacts and records each batch's outcomes here: an outcome is kept once (create-only blob, then the state's keyed
/// dictionary; a recomputation after a failure finds the earlier record and keeps it). Progress goes to observers as
/// <see cref="JobProgress"/> (counts of outcomes recorded), through the gateway's SignalR hub. When the silo of a running
/// evaluation dies, its next activation resumes the ε runs still missing: while running, a keep-alive timer holds the
/// activation and restarts a run that stopped, and a reminder (every minute) re-activates the grain on another silo
/// after its silo died, so it resumes without anyone polling; the reminder is removed when the evaluation finishes.
/// </summary>
public sealed class EvaluationJobGrain(
    [PersistentState("evaluation", GrainStorageNames.Jobs)] IPersistentState<EvaluationJobState> state,
    IArtifactStore store,
    IOptions<JobOptions> jobOptions,
    TimeProvider clock,
    ILogger<EvaluationJobGrain> log) : Grain, IEvaluationJobGrain, IRemindable
{
    public const string ReportPath = "results/report.json";
    /// <summary>The keep-alive timer's period (it restarts a stopped run of a running evaluation).</summary>
    public static readonly TimeSpan KeepAlivePeriod = TimeSpan.FromSeconds(30);
    private IGrainTimer? _keepAlive;
    private readonly JobObservers _observers = new(log);
    private Task? _running;
    private readonly CancellationTokenSource _stop = new();
    public const string CancelledReason = "cancelled";
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
        Identifiers.RequireTenantId(definition.TenantId);
        if (definition.JobId != JobId || !EvaluationDefinition.IsEvaluationId(JobId)) throw new TaptRequestException("the definition is for another job id");
        if (S.Definition is { } existing)
        {
            if (existing.TenantId == definition.TenantId && existing.CreatedAt == definition.CreatedAt) return Status();
            throw new TaptRequestException($"job id '{JobId}' is already in use");
        }
        definition.Request.Validate();
        definition.Configuration.Validate();
        if (definition.Vocabulary.Labels.Length < 2) throw new TaptRequestException("the vocabulary needs at least two labels");
        S.Definition = definition;
        S.State = JobState.Open;
        await Saved.SaveAsync();
        return Status();
    }

    public async Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<EvaluationImage> images)
    {
        var def = Authorize(tenantId);
        if (S.State != JobState.Open) throw new TaptRequestException($"evaluation '{JobId}' is {S.State.ToString().ToLowerInvariant()}: images can be added only while it is open");
        if (images.IsDefaultOrEmpty) return new AddImagesReceipt([], [], S.Images.Count);
        if (S.Images.Count + images.Length > IEvaluationJobGrain.MaxImages) throw new TaptRequestException($"an evaluation holds at most {IEvaluationJobGrain.MaxImages} images");
        var labels = def.Vocabulary.Labels.Select((l, i) => (l.Label, i)).ToDictionary(x => x.Label, x => x.i, StringComparer.Ordinal);
        string? UnknownLabel(int position) => images[position] is { Label: { } l } && labels.ContainsKey(l) ? null
            : $"UnknownLabel: '{images[position]?.Label}' is not a label of vocabulary {def.Vocabulary.Name} v{def.Vocabulary.Version}";
        var (accepted, parts) = ImageIntake.Examine([.. images.Select(i => (i?.Name, i?.Content))], S.Images.Count, UnknownLabel);
        await ImageIntake.StoreAsync(store, def.TenantId, JobId, accepted, jobOptions.Value.UploadParallelism);
        S.Images.AddRange(accepted.Select(a => new EvaluationImageEntry(a.Name, labels[images[a.Position].Label], a.Info.Format)));
        await Saved.SaveAsync();
        return AddImagesReceipt.Of(parts, S.Images.Count);
    }

    public async Task<EvaluationStatus> StartAsync(string tenantId, JobLimits? limits = null)
    {
        Authorize(tenantId);
        if (S.State is JobState.Running or JobState.Completed) return Status();
        if (S.State == JobState.Cancelled) throw new TaptRequestException($"evaluation '{JobId}' stopped: {S.Error}");
        if (S.Images.Count == 0) throw new TaptRequestException("add at least one labelled image before starting the evaluation");
        var l = limits ?? JobLimits.None;
        await Slots.StartAsync(l,
            async () =>
            {
                // Charged once, when the work is known (images × ε); a start that cannot be recorded gives them back.
                var images = ChargedImages;
                var quota = GrainFactory.GetGrain<ITenantQuotaGrain>(S.Definition!.TenantId);
                var decision = await quota.ReserveImagesAsync(images, l.ImagesPerDay);
                if (!decision.Granted) throw new TaptQuotaException(QuotaKind.ImagesPerDay, decision);
                S.State = JobState.Running;
                S.StartedAt = clock.GetUtcNow();
                try
                {
                    await Saved.SaveAsync();
                }
                catch
                {
                    await quota.ReleaseImagesAsync(images);
                    throw;
                }
            },
            () =>
            {
                S.State = JobState.Open;
                S.StartedAt = null;
            });
        await EnsureReminderAsync();
        StartRunning();
        await NotifyAsync();
        return Status();
    }

    public async Task<EvaluationStatus> CancelAsync(string tenantId)
    {
        Authorize(tenantId);
        if (S.State is JobState.Completed or JobState.Cancelled) return Status();
        var wasRunning = S.State == JobState.Running;
        _stop.Cancel();   // the worker's call is cancelled: it stops within an attack step
        if (wasRunning) await Slots.ReleaseAsync();
        S.State = JobState.Cancelled;
        S.Error = CancelledReason;
        S.FinishedAt = clock.GetUtcNow();
        await Saved.SaveAsync();
        log.LogInformation("Evaluation {Job} cancelled with {Outcomes} outcome(s) recorded", JobId, S.Outcomes.Count);
        await NotifyAsync();
        await UnregisterReminderAsync();
        return Status();
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

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != Grains.ResumeReminder.Name) return Task.CompletedTask;
        if (S.Definition is not null && S.State == JobState.Running)
        {
            StartRunning();
            return Task.CompletedTask;
        }
        return UnregisterReminderAsync();
    }

    private void StartRunning()
    {
        if (S.State != JobState.Running || _running is { IsCompleted: false }) return;
        DelayDeactivation(TimeSpan.FromHours(12));
        _running = RunAsync();
        _keepAlive ??= this.RegisterGrainTimer(KeepAliveAsync, new GrainTimerCreationOptions(KeepAlivePeriod, KeepAlivePeriod)
        {
            Interleave = true,
            KeepAlive = true,
        });
    }

    private async Task KeepAliveAsync(CancellationToken ct)
    {
        if (S.State == JobState.Running)
        {
            StartRunning();
            await Slots.RenewIfDueAsync();
            return;
        }
        _keepAlive?.Dispose();
        _keepAlive = null;
        await UnregisterReminderAsync();
    }

    private Task EnsureReminderAsync() => Grains.ResumeReminder.EnsureAsync(this, log, $"Evaluation {JobId}");

    private Task UnregisterReminderAsync() => Grains.ResumeReminder.RemoveAsync(this, log, $"Evaluation {JobId}");

    private async Task RunAsync()
    {
        var def = S.Definition!;
        using var scope = log.BeginScope("Tenant {TenantId} evaluation {JobId}", def.TenantId, JobId);
        var worker = GrainFactory.GetGrain<IEvaluationWorkerGrain>(def.Configuration.Model);
        var labels = def.Vocabulary.Labels.Select(l => l.Label).ToImmutableArray();
        var prompts = PromptTexts.Of(def.Vocabulary);
        var imageLabels = S.Images.Select(i => i.Label).ToImmutableArray();
        try
        {
            for (var k = 0; k < def.Request.Epsilons.Length && S.State == JobState.Running; k++)
            {
                var done = Enumerable.Range(0, S.Images.Count).Where(i => S.Outcomes.ContainsKey(Key(k, i))).ToImmutableArray();
                if (S.Runs.ContainsKey(k) && done.Length == S.Images.Count) continue;
                var context = Retries.Context(_stop.Token);
                try
                {
                    var info = await Runs.ExecuteAsync(async (c, eps) => await worker.RunAsync(
                        new EvaluationWork(def.TenantId, JobId, def.Configuration, labels, prompts, imageLabels, def.Request, eps, done), c.CancellationToken), context, k);
                    S.Runs[k] = info;
                    _waiting = null;
                    await Saved.SaveAsync();
                }
                finally
                {
                    Retries.Return(context);
                }
            }
            if (S.State != JobState.Running) return;   // cancelled: CancelAsync recorded it
            if (S.Outcomes.Count < S.Images.Count * def.Request.Epsilons.Length) throw new TuningFailedException("the worker finished without every outcome");
            await Slots.ReleaseAsync();   // first: whoever sees it completed may start the next one
            S.State = JobState.Completed;
            S.FinishedAt = clock.GetUtcNow();
            await store.PutFileAsync(def.TenantId, JobId, ReportPath, BinaryData.FromString(BuildReport().ToJsonString(new JsonSerializerOptions { WriteIndented = true })), "application/json");
            await Saved.SaveAsync();
            log.LogInformation("Evaluation {Job} completed: {Images} image(s) × {Eps} ε", JobId, S.Images.Count, def.Request.Epsilons.Length);
        }
        catch (Exception) when (S.State != JobState.Running)
        {
            return;   // cancelled while the worker ran: CancelAsync recorded it
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Evaluation {Job} failed", JobId);
            await Slots.ReleaseAsync();
            S.State = JobState.Cancelled;
            S.Error = e.Message;
            S.FinishedAt = clock.GetUtcNow();
            try { await Saved.SaveAsync(); } catch (Exception w) { log.LogWarning(w, "Evaluation {Job}: state not saved", JobId); }
        }
        await NotifyAsync();
        if (S.State != JobState.Running) await UnregisterReminderAsync();
    }

    private System.Text.Json.Nodes.JsonObject BuildReport() =>
        RobustnessReportBuilder.Build(Status(), S.Definition!, S.Images.Select(i => i.Name).ToArray(), S.Outcomes.Values, S.Runs);

    private async Task NotifyAsync()
    {
        if (_observers.Count == 0) return;
        var s = Status();
        var progress = new JobProgress(JobId, s.State, new JobCounts(s.OutcomesTotal, s.OutcomesRecorded, 0, 0), s.Error ?? s.Waiting);
        await _observers.Notify(o => o.OnJobProgress(progress));
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
