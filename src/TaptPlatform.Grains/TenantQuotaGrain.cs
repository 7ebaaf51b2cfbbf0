using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>The durable counters of a tenant's quotas.</summary>
[GenerateSerializer]
public sealed class TenantQuotaState
{
    /// <summary>The UTC day <see cref="ImagesToday"/> counts.</summary>
    [Id(0)] public DateOnly Day { get; set; }

    [Id(1)] public int ImagesToday { get; set; }

    /// <summary>Job id → when it was counted as running.</summary>
    [Id(2)] public Dictionary<string, DateTimeOffset> RunningJobs { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// A tenant's quota counters (key: tenant id). Not reentrant, so a reservation and the count it checks are one step.
/// Running jobs are re-checked with their job grains on every start, so a finished job frees its slot without
/// anyone telling this grain.
/// </summary>
public sealed class TenantQuotaGrain(
    [PersistentState("quota", GrainStorageNames.Tenants)] IPersistentState<TenantQuotaState> state,
    TimeProvider clock,
    ILogger<TenantQuotaGrain> log) : Grain, ITenantQuotaGrain
{
    /// <summary>How long a job counted at start may still be open (its start call on the way) before it stops counting.</summary>
    private static readonly TimeSpan StartGrace = TimeSpan.FromMinutes(1);

    private string TenantId => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        return Task.CompletedTask;
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

    public async Task<QuotaDecision> TryStartJobAsync(string jobId, int maxConcurrent)
    {
        Identifiers.RequireJobId(jobId);
        var now = clock.GetUtcNow();
        var running = state.State.RunningJobs;
        if (running.ContainsKey(jobId)) return QuotaDecision.Grant(running.Count, maxConcurrent);
        foreach (var (id, since) in running.ToList())
        {
            JobState? s;
            try
            {
                s = (await GrainFactory.GetGrain<IJobGrain>(id).GetStatusAsync(TenantId)).State;
            }
            catch (TaptNotFoundException)
            {
                s = null;
            }
            if (s is null or JobState.Completed or JobState.Cancelled || (s == JobState.Open && now - since > StartGrace)) running.Remove(id);
        }
        if (running.Count >= maxConcurrent)
        {
            await state.WriteStateAsync();
            return new QuotaDecision(false, TimeSpan.FromSeconds(30),
                $"at most {maxConcurrent} job(s) may run at once ({running.Count} running)", running.Count, maxConcurrent);
        }
        running[jobId] = now;
        await state.WriteStateAsync();
        log.LogDebug("Tenant {Tenant} runs {Count} job(s)", TenantId, running.Count);
        return QuotaDecision.Grant(running.Count, maxConcurrent);
    }

    public async Task ReleaseJobAsync(string jobId)
    {
        if (state.State.RunningJobs.Remove(jobId)) await state.WriteStateAsync();
    }

    public Task<TenantUsage> GetUsageAsync()
    {
        RollDay(clock.GetUtcNow());
        return Task.FromResult(new TenantUsage(state.State.Day, state.State.ImagesToday, state.State.RunningJobs.Keys.Order(StringComparer.Ordinal).ToImmutableArray()));
    }

    private void RollDay(DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        if (state.State.Day == today) return;
        state.State.Day = today;
        state.State.ImagesToday = 0;
    }
}
