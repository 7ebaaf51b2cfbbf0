using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Slots;

namespace TaptPlatform.Grains;

/// <summary>The durable state of the cluster's job admission: job id → its lease on a running-job slot.</summary>
[GenerateSerializer]
public sealed class JobAdmissionState
{
    /// <summary>Read from state written before leases, never written: those jobs renew a lease within a watchdog period.</summary>
    [Id(0)] public Dictionary<string, AdmittedJob>? Running { get; set; }

    [Id(1)] public Dictionary<string, SlotLease> Leases { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>An admission as state written before leases recorded it.</summary>
[GenerateSerializer, Immutable]
public sealed record AdmittedJob([property: Id(0)] string TenantId, [property: Id(1)] DateTimeOffset Since);

/// <summary>
/// Counts the jobs running in the whole cluster (one activation, key <see cref="IJobAdmissionGrain.ClusterKey"/>).
/// Not reentrant, so a check and the count it reads are one step. Jobs hold their slots under leases
/// (<see cref="SlotLeases"/>): they release them when they end, and a lease nobody renews expires. The leases are
/// persisted: a reactivation after a silo failure does not admit a second full set of jobs.
/// </summary>
public sealed class JobAdmissionGrain(
    [PersistentState("admission", GrainStorageNames.Tenants)] IPersistentState<JobAdmissionState> state,
    TimeProvider clock,
    ILogger<JobAdmissionGrain> log) : Grain, IJobAdmissionGrain
{
    /// <summary>What a refused caller is told to wait: short, because one job of the cluster finishing frees a slot.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private SlotLeases Running => new(state.State.Leases);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        state.State.Running = null;
        return Task.CompletedTask;
    }

    public async Task<QuotaDecision> TryStartJobAsync(string tenantId, string jobId, int maxRunning, TimeSpan lease)
    {
        Identifiers.RequireTenantId(tenantId);
        Identifiers.RequireJobId(jobId);
        SlotLeases.RequireLease(lease);
        var now = clock.GetUtcNow();
        var running = Running;
        var pruned = running.Prune(now);
        if (!running.TryAcquire(jobId, tenantId, maxRunning, now, lease))
        {
            if (pruned > 0) await state.WriteStateAsync();
            log.LogDebug("Admission refused job {Job}: {Count} of {Max} running", jobId, running.Count, maxRunning);
            return new QuotaDecision(false, RetryAfter,
                $"the cluster runs as many jobs as it may ({running.Count} of {maxRunning}): the job keeps its images; start it again later",
                running.Count, maxRunning);
        }
        await state.WriteStateAsync();
        return QuotaDecision.Grant(running.Count, maxRunning);
    }

    public async Task RenewJobAsync(string tenantId, string jobId, TimeSpan lease)
    {
        Identifiers.RequireTenantId(tenantId);
        Identifiers.RequireJobId(jobId);
        SlotLeases.RequireLease(lease);
        Running.Renew(jobId, tenantId, clock.GetUtcNow(), lease);
        await state.WriteStateAsync();
    }

    public async Task ReleaseJobAsync(string jobId)
    {
        if (Running.Release(jobId)) await state.WriteStateAsync();
    }

    public Task<int> GetRunningCountAsync()
    {
        var running = Running;
        running.Prune(clock.GetUtcNow());   // in memory only: the next write stores it
        return Task.FromResult(running.Count);
    }
}
