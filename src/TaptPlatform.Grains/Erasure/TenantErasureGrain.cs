using System.Collections.Immutable;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tenants;

namespace TaptPlatform.Grains.Erasure;

/// <summary>An erasure's place: its phase, the jobs it found, its cursor in them, the blobs it is deleting, and its counts.</summary>
[GenerateSerializer]
public sealed class TenantErasureState
{
    [Id(0)] public ErasurePhase Phase { get; set; }
    [Id(1)] public DateTimeOffset? Started { get; set; }

    /// <summary>The tenant's job and evaluation ids (null: not looked for yet).</summary>
    [Id(2)] public List<string>? Jobs { get; set; }

    /// <summary>How far the phase got in its list (jobs, or the tenant's own grains).</summary>
    [Id(3)] public int Cursor { get; set; }

    /// <summary>The blobs the current step deletes, named before they are deleted, so a repeat counts each once.</summary>
    [Id(4)] public List<string> PendingBlobs { get; set; } = [];

    [Id(5)] public Dictionary<string, long> Blobs { get; set; } = new(StringComparer.Ordinal);
    [Id(6)] public Dictionary<string, long> GrainStates { get; set; } = new(StringComparer.Ordinal);
    [Id(7)] public Dictionary<string, long> TableRows { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Erases one tenant (key: tenant id) in phases, each a step that is harmless to repeat: keys revoked and unfinished work
/// cancelled, the jobs' and evaluations' states deleted, the tenant's own grain states, its job index rows, every blob
/// of its container (page by page, each page named in the state before it is deleted) and the container, then a signed
/// summary written to the operator's container. The state is saved after every step; after a silo's death the next call
/// or the resume reminder activates the grain elsewhere and it continues where it stopped. A failing step is retried
/// with a growing delay. At the end the grain deletes its own state too: the summary is all that is left.
/// </summary>
public sealed class TenantErasureGrain(
    [PersistentState("erasure", GrainStorageNames.Jobs)] IPersistentState<TenantErasureState> state,
    TenantContainers containers,
    TenantJobIndex jobIndex,
    ErasureRecords records,
    ErasureSummarySigner signer,
    TimeProvider clock,
    ILogger<TenantErasureGrain> log) : Grain, ITenantErasureGrain, IRemindable
{
    /// <summary>The keep-alive timer's period: it holds the activation while erasing and restarts a run that stopped.</summary>
    public static readonly TimeSpan KeepAlivePeriod = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(30);
    private const int JobsPerStep = 8;
    private const int BlobsPerStep = 250;
    private const int ParallelDeletes = 16;

    private Task? _running;
    private IGrainTimer? _keepAlive;
    private ErasureSummary? _summary;
    private string? _lastError;

    private string TenantId => this.GetPrimaryKeyString();
    private TenantErasureState S => state.State;
    private bool Erasing => S.Phase is not (ErasurePhase.None or ErasurePhase.Done);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        // A finished erasure deleted its state: the operator's summary says it happened.
        if (S.Phase == ErasurePhase.None) _summary = await records.GetAsync(TenantId);
        else StartRunning();
    }

    public async Task<ErasureStatus> StartAsync()
    {
        var tenant = GrainFactory.GetGrain<ITenantGrain>(TenantId);
        if (_summary is not null) return Status();
        if (Erasing)
        {
            if (S.Phase == ErasurePhase.Cancelling) await tenant.RevokeAllKeysAsync();
            StartRunning();
            return Status();
        }
        if ((await tenant.ListApiKeysAsync()).IsEmpty) throw new TaptNotFoundException($"tenant '{TenantId}' not found");
        // Recorded first: from here on the tenant takes no new key or job, and the erasure finishes whatever happens.
        S.Phase = ErasurePhase.Cancelling;
        S.Started = clock.GetUtcNow();
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            S.Phase = ErasurePhase.None;
            S.Started = null;
            throw;
        }
        await ResumeReminder.EnsureAsync(this, log, $"Erasure of {TenantId}");
        await tenant.RevokeAllKeysAsync();
        await records.MarkStartedAsync(TenantId);
        log.LogWarning("Erasure of tenant {Tenant} started: its keys are revoked", TenantId);
        StartRunning();
        return Status();
    }

    public Task<ErasureStatus> GetAsync() => Task.FromResult(Status());

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != ResumeReminder.Name) return Task.CompletedTask;
        if (Erasing)
        {
            StartRunning();
            return Task.CompletedTask;
        }
        return ResumeReminder.RemoveAsync(this, log, $"Erasure of {TenantId}");
    }

    // ---- running ---------------------------------------------------------------------------------------------------

    private void StartRunning()
    {
        if (!Erasing || _running is { IsCompleted: false }) return;
        _running = RunAsync();
        _keepAlive ??= this.RegisterGrainTimer(_ =>
        {
            StartRunning();
            return Task.CompletedTask;
        }, new GrainTimerCreationOptions(KeepAlivePeriod, KeepAlivePeriod) { Interleave = true, KeepAlive = true });
    }

    private async Task RunAsync()
    {
        var delay = TimeSpan.FromSeconds(1);
        while (Erasing)
        {
            try
            {
                await StepAsync();
                _lastError = null;
                delay = TimeSpan.FromSeconds(1);
            }
            catch (Exception e)
            {
                _lastError = $"{S.Phase}: {e.Message}";
                log.LogWarning(e, "Erasure of tenant {Tenant}: a {Phase} step failed; it is repeated in {Delay}", TenantId, S.Phase, delay);
                await Task.Delay(delay);
                delay = delay * 2 < MaxRetryDelay ? delay * 2 : MaxRetryDelay;
            }
        }
        _keepAlive?.Dispose();
        _keepAlive = null;
    }

    /// <summary>One step of the current phase; the state is saved when it is done.</summary>
    private Task StepAsync() => S.Phase switch
    {
        ErasurePhase.Cancelling => CancelAsync(),
        ErasurePhase.JobStates => EraseJobStatesAsync(),
        ErasurePhase.TenantStates => EraseTenantStatesAsync(),
        ErasurePhase.TableRows => EraseTableRowsAsync(),
        ErasurePhase.Blobs => EraseBlobsAsync(),
        ErasurePhase.Summary => FinishAsync(),
        _ => Task.CompletedTask,
    };

    /// <summary>Keys revoked (again: idempotent), the tenant's jobs found, and the unfinished ones cancelled through their own cancel.</summary>
    private async Task CancelAsync()
    {
        await GrainFactory.GetGrain<ITenantGrain>(TenantId).RevokeAllKeysAsync();
        await records.MarkStartedAsync(TenantId);
        if (S.Jobs is null)
        {
            S.Jobs = await FindJobsAsync();
            await state.WriteStateAsync();
        }
        var unfinished = (await jobIndex.ListAsync(TenantId, unfinishedOnly: true)).Select(r => r.JobId).ToHashSet(StringComparer.Ordinal);
        foreach (var chunk in S.Jobs.Where(id => IsEvaluation(id) || IsTraining(id) || unfinished.Contains(id)).Chunk(ParallelDeletes))
            await Task.WhenAll(chunk.Select(CancelJobAsync));
        await AdvanceAsync(ErasurePhase.JobStates);
    }

    private async Task CancelJobAsync(string id)
    {
        try
        {
            if (IsEvaluation(id)) await GrainFactory.GetGrain<IEvaluationJobGrain>(id).CancelAsync(TenantId);
            else if (IsTraining(id)) await GrainFactory.GetGrain<IPromptTrainingJobGrain>(id).CancelAsync(TenantId);
            else await GrainFactory.GetGrain<IJobGrain>(id).CancelAsync(TenantId);
        }
        catch (TaptNotFoundException)
        {
            // never created, or erased already
        }
    }

    private async Task EraseJobStatesAsync()
    {
        var jobs = S.Jobs ?? [];
        if (S.Cursor >= jobs.Count)
        {
            await AdvanceAsync(ErasurePhase.TenantStates);
            return;
        }
        var chunk = jobs.Skip(S.Cursor).Take(JobsPerStep).ToList();
        var cleared = await Task.WhenAll(chunk.Select(id => JobGrain(id).EraseTenantDataAsync(TenantId)));
        for (var i = 0; i < chunk.Count; i++) Count(S.GrainStates, IsEvaluation(chunk[i]) ? "evaluation" : IsTraining(chunk[i]) ? "prompt-training" : "job", cleared[i]);
        S.Cursor += chunk.Count;
        await state.WriteStateAsync();
    }

    private async Task EraseTenantStatesAsync()
    {
        var grains = TenantGrains();
        if (S.Cursor >= grains.Length)
        {
            await AdvanceAsync(ErasurePhase.TableRows);
            return;
        }
        var (kind, grain) = grains[S.Cursor];
        Count(S.GrainStates, kind, await grain.EraseTenantDataAsync(TenantId));
        S.Cursor++;
        await state.WriteStateAsync();
    }

    private async Task EraseTableRowsAsync()
    {
        Count(S.TableRows, "job-index", await jobIndex.DeleteAllAsync(TenantId));
        await AdvanceAsync(ErasurePhase.Blobs);
    }

    /// <summary>One page of the container's blobs (named in the state first), or, once it is empty, the container.</summary>
    private async Task EraseBlobsAsync()
    {
        var container = containers.Existing(TenantId);
        if (S.PendingBlobs.Count == 0)
        {
            InventoryPage? page = null;
            if (await container.ExistsAsync())
                await foreach (var p in TenantInventory.PagesAsync(container, null, BlobsPerStep))
                {
                    page = p;
                    break;
                }
            if (page is not { Items.Count: > 0 })
            {
                await containers.DeleteAsync(TenantId);
                await AdvanceAsync(ErasurePhase.Summary);
                return;
            }
            S.PendingBlobs = page.Items.Select(i => i.Name).ToList();
            await state.WriteStateAsync();
        }
        foreach (var chunk in S.PendingBlobs.Chunk(ParallelDeletes))
            await Task.WhenAll(chunk.Select(name => container.DeleteBlobIfExistsAsync(name, DeleteSnapshotsOption.IncludeSnapshots)));
        foreach (var name in S.PendingBlobs) Count(S.Blobs, TenantInventory.KindOf(name), 1);
        S.PendingBlobs = [];
        await state.WriteStateAsync();
    }

    /// <summary>The signed summary to the operator's container; then the erasure's own state goes as well.</summary>
    private async Task FinishAsync()
    {
        // Something of the tenant's still writing after its container went (a late upload part): delete again.
        if (await containers.Existing(TenantId).ExistsAsync())
        {
            await AdvanceAsync(ErasurePhase.Blobs);
            return;
        }
        var summary = signer.Sign(new ErasureSummary(TenantId, S.Started ?? clock.GetUtcNow(), clock.GetUtcNow(),
            Sorted(S.Blobs), Sorted(S.GrainStates), Sorted(S.TableRows), [.. S.Jobs ?? []]));
        await records.PutAsync(summary);
        _summary = summary;
        await ResumeReminder.RemoveAsync(this, log, $"Erasure of {TenantId}");
        await state.ClearStateAsync();
        state.State = new TenantErasureState { Phase = ErasurePhase.Done };
        log.LogWarning("Erasure of tenant {Tenant} finished: {Blobs} blob(s), {States} grain state(s), {Rows} table row(s) deleted", TenantId,
            summary.Blobs.Values.Sum(), summary.GrainStates.Values.Sum(), summary.TableRows.Values.Sum());
    }

    // ---- parts -----------------------------------------------------------------------------------------------------

    /// <summary>Every job and evaluation id the tenant has: its job index, its evaluation index and its container's job folders.</summary>
    private async Task<List<string>> FindJobsAsync()
    {
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var row in await jobIndex.ListAsync(TenantId)) ids.Add(row.JobId);
        foreach (var id in await GrainFactory.GetGrain<IEvaluationIndexGrain>(TenantId).ListAsync()) ids.Add(id);
        foreach (var id in await GrainFactory.GetGrain<IPromptTrainingIndexGrain>(TenantId).ListAsync()) ids.Add(id);
        var container = containers.Existing(TenantId);
        if (await container.ExistsAsync())
            await foreach (var item in container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", "jobs/", CancellationToken.None))
                if (item.IsPrefix && TenantInventory.JobOf(item.Prefix + "x") is { } id) ids.Add(id);
        return [.. ids];
    }

    private (string Kind, ITenantDataGrain Grain)[] TenantGrains() =>
    [
        ("tenant", GrainFactory.GetGrain<ITenantGrain>(TenantId)),
        ("retention", GrainFactory.GetGrain<IRetentionGrain>(TenantId)),
        ("quota", GrainFactory.GetGrain<ITenantQuotaGrain>(TenantId)),
        ("prompt-artifacts", GrainFactory.GetGrain<IPromptArtifactsGrain>(TenantId)),
        ("evaluation-index", GrainFactory.GetGrain<IEvaluationIndexGrain>(TenantId)),
        ("prompt-training-index", GrainFactory.GetGrain<IPromptTrainingIndexGrain>(TenantId)),
    ];

    private ITenantDataGrain JobGrain(string id) =>
        IsEvaluation(id) ? GrainFactory.GetGrain<IEvaluationJobGrain>(id)
        : IsTraining(id) ? GrainFactory.GetGrain<IPromptTrainingJobGrain>(id)
        : GrainFactory.GetGrain<IJobGrain>(id);

    private static bool IsTraining(string id) => id.StartsWith(PromptTrainingDefinition.IdPrefix, StringComparison.Ordinal);

    private static bool IsEvaluation(string id) => id.StartsWith(EvaluationDefinition.IdPrefix, StringComparison.Ordinal);

    private async Task AdvanceAsync(ErasurePhase next)
    {
        S.Phase = next;
        S.Cursor = 0;
        await state.WriteStateAsync();
        log.LogInformation("Erasure of tenant {Tenant}: {Phase}", TenantId, next);
    }

    private static void Count(Dictionary<string, long> counts, string kind, long n)
    {
        if (n > 0) counts[kind] = counts.GetValueOrDefault(kind) + n;
    }

    private static ImmutableSortedDictionary<string, long> Sorted(Dictionary<string, long> counts) =>
        counts.ToImmutableSortedDictionary(StringComparer.Ordinal);

    private ErasureStatus Status() => _summary is { } s
        ? new ErasureStatus(TenantId, ErasurePhase.Done, s.Started, s.Blobs, s.GrainStates, s.TableRows, s.Jobs.Length, null, s)
        : new ErasureStatus(TenantId, S.Phase, S.Started, Sorted(S.Blobs), Sorted(S.GrainStates), Sorted(S.TableRows), S.Jobs?.Count ?? 0, _lastError, null);
}
