using System.Collections.Immutable;
using System.Globalization;
using Azure;
using Azure.Storage.Blobs.Models;
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
        var container = await containers.GetAsync(TenantId);
        var policy = Effective;
        var sweep = state.State.Current ?? new RetentionSweep(clock.GetUtcNow(), null, 0, ImmutableDictionary<string, int>.Empty);
        var now = clock.GetUtcNow();
        await foreach (var page in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).AsPages(state.State.Cursor, PageSize))
        {
            var deleted = sweep.Deleted.ToBuilder();
            foreach (var blob in page.Values)
            {
                var kind = KindOf(blob.Name);
                var written = blob.Properties.CreatedOn ?? blob.Properties.LastModified;
                if (kind is null || PeriodOf(kind, policy) is not { } period || written is null || written.Value + period > now) continue;
                await container.DeleteBlobIfExistsAsync(blob.Name);
                deleted[kind] = deleted.GetValueOrDefault(kind) + 1;
                state.State.DeletedTotal[kind] = state.State.DeletedTotal.GetValueOrDefault(kind) + 1;
            }
            sweep = sweep with { Examined = sweep.Examined + page.Values.Count, Deleted = deleted.ToImmutable() };
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

    private const string Staging = "staging";

    /// <summary>The artifact kind of <c>jobs/{job}/{kind}/…</c>, "staging" for <c>staging/…</c>, or null for anything else (trail, reviews, prompts: never swept).</summary>
    private static string? KindOf(string blobName)
    {
        if (blobName.StartsWith(ImageStaging.Prefix, StringComparison.Ordinal)) return Staging;
        var parts = blobName.Split('/', 4);
        return parts.Length >= 4 && parts[0] == "jobs" && Kinds.Contains(parts[2]) ? parts[2] : null;
    }

    private TimeSpan? PeriodOf(string kind, RetentionPolicy policy) => kind == Staging ? Options.StagingPeriod : policy.For(kind);

    private RetentionStatus Status() => new(Effective, Options.Default, state.State.Tenant, state.State.LastSweep,
        state.State.DeletedTotal.ToImmutableDictionary(StringComparer.Ordinal), Options.SweepInterval);
}
