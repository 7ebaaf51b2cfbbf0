using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Slots;

/// <summary>
/// The running slots one job holds: its tenant's (<see cref="ITenantQuotaGrain"/>) and the cluster's
/// (<see cref="IJobAdmissionGrain"/>). Taken by the job's start, renewed while it runs (a quarter of the lease at a
/// time, so a missed renewal or two cost nothing), and given back by its end; if the job dies for good its leases
/// expire. The job grain that composes this is the only caller, so no one else can start a job past its limits.
/// </summary>
internal sealed class JobSlots(IGrainFactory grains, string tenantId, string jobId, TimeSpan lease, TimeProvider clock, ILogger log)
{
    private DateTimeOffset _renewed = DateTimeOffset.MinValue;
    private bool _released;

    private ITenantQuotaGrain Quota => grains.GetGrain<ITenantQuotaGrain>(tenantId);
    private IJobAdmissionGrain Admission => grains.GetGrain<IJobAdmissionGrain>(IJobAdmissionGrain.ClusterKey);

    /// <summary>Takes both slots, the tenant's first (cheap, per tenant); throws <see cref="TaptQuotaException"/> when one is refused.</summary>
    public async Task AcquireAsync(JobLimits limits)
    {
        var quota = Quota;
        var decision = await quota.TryStartJobAsync(jobId, limits.MaxConcurrentJobs, lease);
        if (!decision.Granted) throw new TaptQuotaException(QuotaKind.ConcurrentJobs, decision);
        QuotaDecision admission;
        try
        {
            admission = await Admission.TryStartJobAsync(tenantId, jobId, limits.MaxRunningJobs, lease);
        }
        catch
        {
            await ReleaseAsync();
            throw;
        }
        if (!admission.Granted)
        {
            await ReleaseAsync();
            throw new TaptQuotaException(QuotaKind.ClusterRunningJobs, admission);
        }
        _renewed = clock.GetUtcNow();
        _released = false;
    }

    /// <summary>
    /// A start under the limits: takes the slots, then records the start; a start that cannot be recorded is undone
    /// in memory (memory says what storage says) and gives the slots back.
    /// </summary>
    public async Task StartAsync(JobLimits limits, Func<Task> recordStart, Action forgetStart)
    {
        await AcquireAsync(limits);
        try
        {
            await recordStart();
        }
        catch
        {
            forgetStart();
            await ReleaseAsync();
            throw;
        }
    }

    /// <summary>Renews both leases when a quarter of the lease has passed since the last renewal (or on a new activation).</summary>
    public async Task RenewIfDueAsync()
    {
        var now = clock.GetUtcNow();
        // A renewal interleaved with the job's end must not take back what the end gave back.
        if (_released || now - _renewed < lease / 4) return;
        try
        {
            await Task.WhenAll(Quota.RenewJobAsync(jobId, lease), Admission.RenewJobAsync(tenantId, jobId, lease));
            _renewed = now;
        }
        catch (Exception e)
        {
            // The next watchdog tick tries again; the lease outlasts several misses.
            log.LogWarning(e, "Job {Job} could not renew its running slots", jobId);
        }
    }

    /// <summary>Gives both slots back; a failure is logged, and the lease then frees the slot when it expires.</summary>
    public async Task ReleaseAsync()
    {
        _released = true;
        var results = await Task.WhenAll(Try(() => Quota.ReleaseJobAsync(jobId)), Try(() => Admission.ReleaseJobAsync(jobId)));
        if (results.Any(ok => !ok))
            log.LogWarning("Job {Job} could not release a running slot: it frees itself when its lease ends (within {Lease})", jobId, lease);
    }

    private async Task<bool> Try(Func<Task> release)
    {
        try
        {
            await release();
            return true;
        }
        catch (Exception e)
        {
            log.LogDebug(e, "Job {Job}: slot release failed", jobId);
            return false;
        }
    }
}
