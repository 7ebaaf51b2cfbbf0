using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Slots;

namespace TaptPlatform.Grains;

/// <summary>The durable counters of a tenant's quotas.</summary>
[GenerateSerializer]
public sealed class TenantQuotaState
{
    /// <summary>The UTC day <see cref="ImagesToday"/> counts.</summary>
    [Id(0)] public DateOnly Day { get; set; }

    [Id(1)] public int ImagesToday { get; set; }

    /// <summary>Read from state written before leases, never written: those jobs renew a lease within a watchdog period.</summary>
    [Id(2)] public Dictionary<string, DateTimeOffset>? RunningJobs { get; set; }

    /// <summary>Job id → its lease on one of the tenant's running-job slots.</summary>
    [Id(3)] public Dictionary<string, SlotLease> Leases { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// A tenant's quota counters (key: tenant id). Not reentrant, so a reservation and the count it checks are one step.
/// Running jobs hold their slots under leases (<see cref="SlotLeases"/>): they release them when they end, and a lease
/// nobody renews expires.
/// </summary>
public sealed class TenantQuotaGrain(
    [PersistentState("quota", GrainStorageNames.Tenants)] IPersistentState<TenantQuotaState> state,
    TimeProvider clock,
    ILogger<TenantQuotaGrain> log) : Grain, ITenantQuotaGrain
{
    private string TenantId => this.GetPrimaryKeyString();

    private SlotLeases Running => new(state.State.Leases);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        state.State.RunningJobs = null;
        return Task.CompletedTask;
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != TenantId) return 0;
        var cleared = await TenantData.ClearAsync(state);
        DeactivateOnIdle();
        return cleared;
    }

    public async Task<QuotaDecision> ReserveImagesAsync(int count, int dailyLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var now = clock.GetUtcNow();
        RollDay(now);
        if (count == 0) return QuotaDecision.Grant(state.State.ImagesToday, dailyLimit);
        if ((long)state.State.ImagesToday + count > dailyLimit)
        {
            var midnight = new DateTimeOffset(now.UtcDateTime.Date.AddDays(1), TimeSpan.Zero);
            return new QuotaDecision(false, midnight - now,
                $"the daily image quota of {dailyLimit} is used up ({state.State.ImagesToday} accepted today, {count} more offered)",
                state.State.ImagesToday, dailyLimit);
        }
        state.State.ImagesToday += count;
        await state.WriteStateAsync();
        return QuotaDecision.Grant(state.State.ImagesToday, dailyLimit);
    }

    public async Task ReleaseImagesAsync(int count)
    {
        if (count <= 0) return;
        RollDay(clock.GetUtcNow());
        state.State.ImagesToday = Math.Max(0, state.State.ImagesToday - count);
        await state.WriteStateAsync();
    }

    public async Task<QuotaDecision> TryStartJobAsync(string jobId, int maxConcurrent, TimeSpan lease)
    {
        Identifiers.RequireJobId(jobId);
        SlotLeases.RequireLease(lease);
        var now = clock.GetUtcNow();
        var running = Running;
        var pruned = running.Prune(now);
        if (!running.TryAcquire(jobId, TenantId, maxConcurrent, now, lease))
        {
            if (pruned > 0) await state.WriteStateAsync();
            return new QuotaDecision(false, TimeSpan.FromSeconds(30),
                $"at most {maxConcurrent} job(s) may run at once ({running.Count} running)", running.Count, maxConcurrent);
        }
        await state.WriteStateAsync();
        log.LogDebug("Tenant {Tenant} runs {Count} job(s)", TenantId, running.Count);
        return QuotaDecision.Grant(running.Count, maxConcurrent);
    }

    public async Task RenewJobAsync(string jobId, TimeSpan lease)
    {
        Identifiers.RequireJobId(jobId);
        SlotLeases.RequireLease(lease);
        Running.Renew(jobId, TenantId, clock.GetUtcNow(), lease);
        await state.WriteStateAsync();
    }

    public async Task ReleaseJobAsync(string jobId)
    {
        if (Running.Release(jobId)) await state.WriteStateAsync();
    }

    public Task<TenantUsage> GetUsageAsync()
    {
        var now = clock.GetUtcNow();
        RollDay(now);
        var running = Running;
        running.Prune(now);   // in memory only: the next write stores it
        return Task.FromResult(new TenantUsage(state.State.Day, state.State.ImagesToday, running.JobIds.Order(StringComparer.Ordinal).ToImmutableArray()));
    }

    private void RollDay(DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        if (state.State.Day == today) return;
        state.State.Day = today;
        state.State.ImagesToday = 0;
    }
}
