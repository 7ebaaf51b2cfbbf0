using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>The durable state of the cluster's job admission: job id → its tenant and when it was admitted.</summary>
[GenerateSerializer]
public sealed class JobAdmissionState
{
    [Id(0)] public Dictionary<string, AdmittedJob> Running { get; set; } = new(StringComparer.Ordinal);
}

[GenerateSerializer, Immutable]
public sealed record AdmittedJob([property: Id(0)] string TenantId, [property: Id(1)] DateTimeOffset Since);

/// <summary>
/// Counts the jobs running in the whole cluster (one activation, key <see cref="IJobAdmissionGrain.ClusterKey"/>).
/// Not reentrant, so a check and the count it reads are one step. Finished jobs are found by asking their job grains,
/// only when the count is at the limit and at most once a second, so a flood of refused starts costs one read each.
/// The count is persisted: a reactivation after a silo failure does not admit a second full set of jobs.
/// </summary>
public sealed class JobAdmissionGrain(
    [PersistentState("admission", GrainStorageNames.Tenants)] IPersistentState<JobAdmissionState> state,
    TimeProvider clock,
    ILogger<JobAdmissionGrain> log) : Grain, IJobAdmissionGrain
{
    /// <summary>How long an admitted job may still be open (its start call on the way) before it stops counting.</summary>
    private static readonly TimeSpan StartGrace = TimeSpan.FromMinutes(1);

    /// <summary>The shortest time between two scans of the running jobs.</summary>
    private static readonly TimeSpan PruneInterval = TimeSpan.FromSeconds(1);

    /// <summary>What a refused caller is told to wait: short, because one job of the cluster finishing frees a slot.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private DateTimeOffset _lastPrune = DateTimeOffset.MinValue;

    public async Task<QuotaDecision> TryStartJobAsync(string tenantId, string jobId, int maxRunning)
    {
        Identifiers.RequireTenantId(tenantId);
        Identifiers.RequireJobId(jobId);
        var running = state.State.Running;
        if (running.ContainsKey(jobId)) return QuotaDecision.Grant(running.Count, maxRunning);
        if (running.Count >= maxRunning) await PruneAsync(force: false);
        if (running.Count >= maxRunning)
        {
            log.LogDebug("Admission refused job {Job}: {Count} of {Max} running", jobId, running.Count, maxRunning);
            return new QuotaDecision(false, RetryAfter,
                $"the cluster runs as many jobs as it may ({running.Count} of {maxRunning}): the job keeps its images; start it again later",
                running.Count, maxRunning);
        }
        running[jobId] = new AdmittedJob(tenantId, clock.GetUtcNow());
        await state.WriteStateAsync();
        return QuotaDecision.Grant(running.Count, maxRunning);
    }

    public async Task ReleaseJobAsync(string jobId)
    {
        if (state.State.Running.Remove(jobId)) await state.WriteStateAsync();
    }

    public async Task<int> GetRunningCountAsync()
    {
        await PruneAsync(force: true);
        return state.State.Running.Count;
    }

    /// <summary>Drops jobs that completed, were cancelled, no longer exist, or never started within the grace time.</summary>
    private async Task PruneAsync(bool force)
    {
        var now = clock.GetUtcNow();
        if (!force && now - _lastPrune < PruneInterval) return;
        _lastPrune = now;
        var running = state.State.Running;
        var checks = await Task.WhenAll(running.Select(async kv =>
        {
            try
            {
                var s = (await GrainFactory.GetGrain<IJobGrain>(kv.Key).GetStatusAsync(kv.Value.TenantId)).State;
                return (kv.Key, Done: s is JobState.Completed or JobState.Cancelled || (s == JobState.Open && now - kv.Value.Since > StartGrace));
            }
            catch (TaptNotFoundException)
            {
                return (kv.Key, Done: true);
            }
            catch (Exception e)
            {
                // Its silo is unreachable right now: keep counting it (it resumes elsewhere), look again next scan.
                log.LogDebug(e, "Admission could not read job {Job}", kv.Key);
                return (kv.Key, Done: false);
            }
        }));
        var removed = 0;
        foreach (var (jobId, done) in checks)
            if (done && running.Remove(jobId)) removed++;
        if (removed > 0) await state.WriteStateAsync();
    }
}
