using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.JobParts;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Slots;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Apt;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// A prompt training job bound to one tenant. Labelled images are stored as blobs before they are acknowledged (the
/// evaluations' intake); the start splits them (per class a held-out share, then the shots per class), takes the running
/// slots and charges images × epochs of the tenant's daily images. The run is a chain of steps, each one call to the
/// <see cref="IPromptTrainingWorkerGrain"/> of a live accelerator silo: the default artifact's held-out accuracy, one call
/// per epoch (adversarial prompts, then clean ones; the worker checkpoints to the job's blobs after each), then the
/// calibration that makes the artifact version. The epochs done are saved after each step, so when a silo dies the next
/// activation (the keep-alive timer, or the resume reminder after the grain's own silo died) continues from the last
/// checkpoint. Progress goes to <see cref="IPromptTrainingObserver"/>s after every step.
/// </summary>
public sealed partial class PromptTrainingJobGrain(
    [PersistentState("prompt-training", GrainStorageNames.Jobs)] IPersistentState<PromptTrainingJobState> state,
    IArtifactStore store,
    ImageStaging staging,
    IOptions<JobOptions> jobOptions,
    AcceleratorSilos acceleratorSilos,
    TimeProvider clock,
    ILogger<PromptTrainingJobGrain> log) : Grain, IPromptTrainingJobGrain, IRemindable
{
    public const string ReportPath = "results/report.json";
    public const string CancelledReason = JobEnds.CancelledReason;
    private readonly Observers<IPromptTrainingObserver> _observers = new(log);
    private readonly CancellationTokenSource _stop = new();
    private BatchedState<PromptTrainingJobState>? _saved;
    private JobSlots? _slots;
    private string? _waiting;

    private string JobId => this.GetPrimaryKeyString();
    private PromptTrainingJobState S => state.State;
    private BatchedState<PromptTrainingJobState> Saved => _saved ??= new(state);
    private JobSlots Slots => _slots ??= new JobSlots(GrainFactory, S.Definition!.TenantId, JobId, jobOptions.Value.SlotLease, clock, log);

    /// <summary>Epochs of the whole run: the adversarial prompts' then the clean prompts'.</summary>
    private int EpochsTotal => 2 * S.Definition!.Request.Epochs;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (S.Definition is null || S.State != JobState.Running) return;
        StartRunning();
        await EnsureReminderAsync();
    }

    public async Task<PromptTrainingStatus> CreateAsync(PromptTrainingDefinition definition)
    {
        await LabelledJobCreation.CreateAsync(GrainFactory, JobId, definition.JobId, definition.TenantId, definition.CreatedAt,
            S.Definition is { } e ? (e.TenantId, e.CreatedAt) : null, definition.Vocabulary, definition.Request.Validate,
            async () =>
            {
                S.Definition = definition;
                S.State = JobState.Open;
                await Saved.SaveAsync();
            });
        return Status();
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (S.Definition?.TenantId != tenantId) return 0;   // another tenant's job, or erased already
        if (S.State is JobState.Open or JobState.Running) await CancelAsync(tenantId);
        await Running.StopAsync();
        var cleared = await TenantData.ClearAsync(state);
        state.State = new PromptTrainingJobState();
        DeactivateOnIdle();
        return cleared;
    }

    public async Task<AddImagesReceipt> AddImagesAsync(string tenantId, ImmutableArray<EvaluationImage> images)
    {
        var def = Authorize(tenantId);
        var closed = S.State == JobState.Open ? null
            : $"training job '{JobId}' is {S.State.ToString().ToLowerInvariant()}: images can be added only while it is open";
        return await LabelledIntake.AddAsync(staging, store, jobOptions.Value.UploadParallelism, def.TenantId, JobId, def.Vocabulary, images, S.Images, closed,
            (IPromptTrainingJobGrain.MaxImages, $"a training job holds at most {IPromptTrainingJobGrain.MaxImages} images"), () => Saved.SaveAsync());
    }

    public async Task<PromptTrainingStatus> StartAsync(string tenantId, JobLimits? limits = null)
    {
        var def = Authorize(tenantId);
        if (S.State is JobState.Running or JobState.Completed) return Status();
        if (S.State == JobState.Cancelled) throw new TaptRequestException($"training job '{JobId}' stopped: {S.Error}");
        var request = def.Request;
        var labels = S.Images.Select(i => i.Label).ToArray();
        (int[] Train, int[] Validation) split;
        try
        {
            split = AptSplit.Of(labels, def.Vocabulary.Labels.Length, request.ShotsPerClass, request.ValidationFraction, request.Seed);
        }
        catch (ArgumentException)
        {
            var counts = def.Vocabulary.Labels.Select((l, c) => $"{l.Label}: {labels.Count(x => x == c)}");
            throw new TaptRequestException($"too few images: every label of vocabulary {def.Vocabulary.Name} v{def.Vocabulary.Version} needs at least two " +
                $"(one to train on, one held out for validation); the job has {string.Join(", ", counts)}");
        }
        var l = limits ?? JobLimits.None;
        await Slots.StartAsync(l,
            () =>
            {
                // The work is known: every training image once per epoch of each prompt set.
                var charged = (int)Math.Min(int.MaxValue, (long)split.Train.Length * EpochsTotal);
                return DailyImageCharge.ChargeThenSaveAsync(GrainFactory, def.TenantId, charged, l.ImagesPerDay, () =>
                {
                    S.Train = [.. split.Train];
                    S.Validation = [.. split.Validation];
                    S.ChargedImages = charged;
                    S.State = JobState.Running;
                    S.StartedAt = clock.GetUtcNow();
                }, () => Saved.SaveAsync());
            },
            () => JobEnds.ForgetStart(S));
        await EnsureReminderAsync();
        StartRunning();
        await NotifyAsync(null);
        return Status();
    }

    public async Task<PromptTrainingStatus> CancelAsync(string tenantId)
    {
        Authorize(tenantId);
        if (S.State is JobState.Completed or JobState.Cancelled) return Status();
        await JobEnds.CancelAsync(S, _stop, Slots, clock.GetUtcNow(), () => Saved.SaveAsync());   // the worker stops within a training step
        log.LogInformation("Prompt training {Job} cancelled after {Epochs} epoch(s)", JobId, S.Curve.Count);
        await NotifyAsync(null);
        await UnregisterReminderAsync();
        return Status();
    }

    public Task<PromptTrainingStatus> GetStatusAsync(string tenantId)
    {
        Authorize(tenantId);
        return Task.FromResult(Status());
    }

    public async Task<string> GetReportAsync(string tenantId)
    {
        var def = Authorize(tenantId);
        if (S.State == JobState.Completed && await store.GetFileAsync(def.TenantId, JobId, ReportPath) is { } stored) return stored.Content.ToString();
        return PromptTrainingReport.Build(Status(), def).ToJsonString(PromptTrainingReport.Json);
    }

    public Task<bool> SubscribeAsync(string tenantId, IPromptTrainingObserver observer)
    {
        Authorize(tenantId);
        return Task.FromResult(_observers.Subscribe(observer));
    }

    public Task UnsubscribeAsync(string tenantId, IPromptTrainingObserver observer)
    {
        Authorize(tenantId);
        _observers.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    private async Task NotifyAsync(PromptTrainingEpoch? latest)
    {
        if (_observers.Count == 0) return;
        var s = Status();
        var progress = new PromptTrainingProgress(JobId, s.State, s.EpochsDone, s.EpochsTotal, latest ?? S.Curve.LastOrDefault(), s.Error ?? s.Waiting);
        await _observers.Notify(o => o.OnTrainingProgress(progress));
    }

    private PromptTrainingDefinition Authorize(string tenantId) =>
        S.Definition is { } d && d.TenantId == tenantId ? d : throw new TaptNotFoundException($"training job '{JobId}' not found");

    private PromptTrainingStatus Status()
    {
        var d = S.Definition ?? throw new TaptNotFoundException($"training job '{JobId}' not found");
        return new PromptTrainingStatus(JobId, d.TenantId, d.Request.Name, S.State, S.Images.Count, S.Curve.Count, EpochsTotal, d.Vocabulary.Name, d.Vocabulary.Version,
            d.Request, [.. S.Curve], S.Before, S.After, S.Artifact, S.Train.Count, S.Validation.Count, d.CreatedAt, S.StartedAt, S.FinishedAt, S.Error, _waiting);
    }
}
