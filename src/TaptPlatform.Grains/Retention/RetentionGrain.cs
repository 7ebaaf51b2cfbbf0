using System.Collections.Immutable;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.Retention;

/// <summary>A tenant's retention periods, its sweep's place in the listing, and what its sweeps deleted.</summary>
[GenerateSerializer]
public sealed class RetentionState
{
    [Id(0)] public RetentionPolicy Tenant { get; set; } = new();

    /// <summary>Where an unfinished sweep continues (the listing's continuation token), and the sweep so far.</summary>
    [Id(1)] public string? Cursor { get; set; }
    [Id(2)] public RetentionSweep? Current { get; set; }

    [Id(3)] public RetentionSweep? LastSweep { get; set; }
    [Id(4)] public Dictionary<string, long> DeletedTotal { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Deletes a tenant's stored artifacts (<c>jobs/{job}/{kind}/…</c> in its container) once older than the kind's period:
/// on a reminder every <see cref="RetentionOptions.SweepInterval"/>, page by page, saving its place after each page so a
/// sweep cut short by a silo's death continues where it stopped. Jobs keep their results summaries in their own state,
/// so a job whose inputs expired still shows what it found.
/// </summary>
public sealed class RetentionGrain(
    [PersistentState("retention", GrainStorageNames.Tenants)] IPersistentState<RetentionState> state,
    TenantContainers containers,
    AuditTrailStore trail,
    IOptions<RetentionOptions> options,
    TimeProvider clock,
    ILogger<RetentionGrain> log) : Grain, IRetentionGrain, IRemindable
{
    private const string ReminderName = "retention";

    /// <summary>The tenant's trail entry of a sweep that deleted something (actor "retention", counts per kind).</summary>
    public const string TrailKind = "retention.deleted";
    private const int PageSize = 500;

    private string TenantId => this.GetPrimaryKeyString();
    private RetentionOptions Options => options.Value;
    private RetentionPolicy Effective => state.State.Tenant.Within(Options.Default);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        return Task.CompletedTask;
    }

    public Task<RetentionStatus> GetAsync() => Task.FromResult(Status());

    /// <summary>Stops the periodic sweep (a sweep after the erasure would create the tenant's container again) and deletes the state.</summary>
    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != TenantId) return 0;
        if (await this.GetReminder(ReminderName) is { } reminder) await this.UnregisterReminder(reminder);
        var cleared = await TenantData.ClearAsync(state);
        DeactivateOnIdle();
        return cleared;
    }

    public async Task<RetentionStatus> SetAsync(RetentionPolicy tenant)
    {
        var limit = Options.Default;
        foreach (var kind in Kinds)
        {
            if (tenant.For(kind) is not { } period) continue;
            if (period < Options.MinimumPeriod)
                throw new TaptRequestException($"{kind}: at least {Options.MinimumPeriod} (the operator's minimum)");
            if (limit.For(kind) is { } max && period > max)
                throw new TaptRequestException($"{kind}: at most {max} (the operator's period; a tenant may shorten it, not lengthen it)");
        }
        state.State.Tenant = tenant;
        await state.WriteStateAsync();
        await EnsureScheduledAsync();
        return Status();
    }

    public Task EnsureScheduledAsync() =>
        this.RegisterOrUpdateReminder(ReminderName, Options.SweepInterval, Options.SweepInterval);

    public Task ReceiveReminder(string reminderName, TickStatus status) =>
        reminderName == ReminderName ? SweepNowAsync() : Task.CompletedTask;

    public async Task<RetentionSweep> SweepNowAsync()
    {
        // The erasure deletes everything; a sweep beside it would only race it for the same blobs.
        if ((await GrainFactory.GetGrain<ITenantErasureGrain>(TenantId).GetAsync()).Phase != ErasurePhase.None)
            throw new TaptConflictException($"tenant '{TenantId}' is being erased or was erased");
        var container = await containers.GetAsync(TenantId);
        var policy = Effective;
        var sweep = state.State.Current ?? new RetentionSweep(clock.GetUtcNow(), null, 0, ImmutableDictionary<string, int>.Empty);
        var now = clock.GetUtcNow();
        await foreach (var page in TenantInventory.PagesAsync(container, state.State.Cursor, PageSize))
        {
            var deleted = sweep.Deleted.ToBuilder();
            foreach (var blob in page.Items)
            {
                if (PeriodOf(blob.Kind, policy) is not { } period || blob.Written is not { } written || written + period > now) continue;
                await container.DeleteBlobIfExistsAsync(blob.Name);
                deleted[blob.Kind] = deleted.GetValueOrDefault(blob.Kind) + 1;
                state.State.DeletedTotal[blob.Kind] = state.State.DeletedTotal.GetValueOrDefault(blob.Kind) + 1;
            }
            sweep = sweep with { Examined = sweep.Examined + page.Items.Count, Deleted = deleted.ToImmutable() };
            state.State.Current = sweep;
            state.State.Cursor = page.ContinuationToken;
            await state.WriteStateAsync();          // the sweep's place: a sweep cut short continues here
        }
        sweep = sweep with { Finished = clock.GetUtcNow() };
        state.State.Current = null;
        state.State.Cursor = null;
        state.State.LastSweep = sweep;
        await state.WriteStateAsync();
        if (sweep.Deleted.Count > 0)
        {
            log.LogInformation("Retention of {Tenant}: deleted {Deleted} of {Examined} artifacts", TenantId,
                string.Join(", ", sweep.Deleted.Select(d => $"{d.Value} {d.Key}")), sweep.Examined);
            var counts = sweep.Deleted.ToImmutableDictionary(d => d.Key, d => d.Value.ToString(CultureInfo.InvariantCulture), StringComparer.Ordinal);
            await trail.AppendAsync(TenantId, new TrailEntry(Guid.CreateVersion7().ToString("N"), sweep.Finished!.Value, TrailKind, "retention", "", "", 200, counts));
        }
        return sweep;
    }

    private static readonly string[] Kinds = [ArtifactKinds.Inputs, ArtifactKinds.Results, ArtifactKinds.Audit, ArtifactKinds.Adversarial];

    /// <summary>
    /// The period of a kind of blob (<see cref="TenantInventory.KindOf"/>): the policy's for the artifact kinds, the
    /// staging period for staging blobs, none for the rest (trail, reviews, prompts, vocabularies: never swept).
    /// </summary>
    private TimeSpan? PeriodOf(string kind, RetentionPolicy policy) => kind == TenantInventory.Staging ? Options.StagingPeriod : policy.For(kind);

    private RetentionStatus Status() => new(Effective, Options.Default, state.State.Tenant, state.State.LastSweep,
        state.State.DeletedTotal.ToImmutableDictionary(StringComparer.Ordinal), Options.SweepInterval);
}
