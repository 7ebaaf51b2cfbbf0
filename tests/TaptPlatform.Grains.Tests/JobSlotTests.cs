using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>
/// A job's running slots (its tenant's concurrent-jobs limit and the cluster's running-jobs limit) are taken by its
/// start and given back by its end, pushed by the job itself: nobody asks the job whether it finished.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class JobSlotTests(PlatformFixture platform)
{
    private static readonly JobLimits OneAtATime = new(MaxConcurrentJobs: 1, MaxRunningJobs: 10_000);

    [Fact]
    public async Task A_completed_job_gives_its_slots_back_the_moment_it_completes()
    {
        var cluster = await platform.ClusterAsync();
        var (tenantId, tenant) = await TenantAsync(cluster, steps: 8);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var admission = cluster.Client.GetGrain<IJobAdmissionGrain>(IJobAdmissionGrain.ClusterKey);
        var first = await JobWithImagesAsync(cluster, tenant, tenantId, 48);   // long enough to be running at the second start
        var admittedBefore = await admission.GetRunningCountAsync();

        await first.StartAsync(tenantId, OneAtATime);
        Assert.Equal([first.GetPrimaryKeyString()], (await quota.GetUsageAsync()).RunningJobs.AsEnumerable());
        // The tenant's one slot is taken: a second job is refused with a quota error, not an internal one.
        var second = await JobWithImagesAsync(cluster, tenant, tenantId, 2);
        var refused = await Assert.ThrowsAsync<TaptQuotaException>(() => second.StartAsync(tenantId, OneAtATime));
        Assert.Equal(QuotaKind.ConcurrentJobs, refused.Kind);
        Assert.Equal((1, 1), (refused.Used, refused.Limit));
        Assert.Equal(JobState.Open, (await second.GetStatusAsync(tenantId)).State);

        Assert.Equal(JobState.Completed, (await PlatformFixture.WaitForJobAsync(first, tenantId, TimeSpan.FromMinutes(2))).State);
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
        Assert.True(await admission.GetRunningCountAsync() <= admittedBefore, "the cluster still counts the completed job");
        Assert.Equal(JobState.Running, (await second.StartAsync(tenantId, OneAtATime)).State);
        await PlatformFixture.WaitForJobAsync(second, tenantId, TimeSpan.FromMinutes(2));
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
    }

    [Fact]
    public async Task A_cancelled_job_gives_its_slots_back_when_the_cancel_returns()
    {
        var cluster = await platform.ClusterAsync();
        var (tenantId, tenant) = await TenantAsync(cluster, steps: 8);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var job = await JobWithImagesAsync(cluster, tenant, tenantId, 64);
        await job.StartAsync(tenantId, OneAtATime);
        Assert.Single((await quota.GetUsageAsync()).RunningJobs);

        Assert.Equal(JobState.Cancelled, (await job.CancelAsync(tenantId)).State);
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
    }

    [Fact]
    public async Task The_cluster_limit_refuses_a_start_and_gives_the_tenant_slot_back()
    {
        var cluster = await platform.ClusterAsync();
        var (tenantId, tenant) = await TenantAsync(cluster);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var job = await JobWithImagesAsync(cluster, tenant, tenantId, 2);
        var full = new JobLimits(MaxConcurrentJobs: 5, MaxRunningJobs: 0);

        var refused = await Assert.ThrowsAsync<TaptQuotaException>(() => job.StartAsync(tenantId, full));
        Assert.Equal(QuotaKind.ClusterRunningJobs, refused.Kind);
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
        Assert.Equal(JobState.Open, (await job.GetStatusAsync(tenantId)).State);
    }

    [Fact]
    public async Task A_slot_whose_job_died_for_good_frees_itself_when_its_lease_ends()
    {
        var cluster = await platform.ClusterAsync();
        var (tenantId, tenant) = await TenantAsync(cluster);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        // A job that took its slot and was never heard of again (its grain never writes, renews or releases).
        var ghost = "job-" + Guid.NewGuid().ToString("N");
        Assert.True((await quota.TryStartJobAsync(ghost, 1, TimeSpan.FromSeconds(2))).Granted);
        var job = await JobWithImagesAsync(cluster, tenant, tenantId, 2);
        await Assert.ThrowsAsync<TaptQuotaException>(() => job.StartAsync(tenantId, OneAtATime));

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
        Assert.Equal(JobState.Running, (await job.StartAsync(tenantId, OneAtATime)).State);
        await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
    }

    [Fact]
    public async Task A_running_job_renews_its_lease_so_a_long_job_keeps_its_slot()
    {
        var cluster = await platform.ClusterAsync();
        var (tenantId, _) = await TenantAsync(cluster);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var jobId = "job-" + Guid.NewGuid().ToString("N");
        Assert.True((await quota.TryStartJobAsync(jobId, 1, TimeSpan.FromSeconds(2))).Granted);
        for (var i = 0; i < 4; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            await quota.RenewJobAsync(jobId, TimeSpan.FromSeconds(2));
        }
        Assert.Equal([jobId], (await quota.GetUsageAsync()).RunningJobs.AsEnumerable());
        await quota.ReleaseJobAsync(jobId);
        await quota.ReleaseJobAsync(jobId);   // idempotent
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
        await Assert.ThrowsAsync<TaptRequestException>(() => quota.TryStartJobAsync(jobId, 1, TimeSpan.Zero));
    }

    private static async Task<(string TenantId, ITenantGrain Tenant)> TenantAsync(TaptCluster cluster, int? steps = null)
    {
        var tenantId = PlatformFixture.NewTenant("slots");
        return (tenantId, await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, steps: steps));
    }

    private static async Task<IJobGrain> JobWithImagesAsync(TaptCluster cluster, ITenantGrain tenant, string tenantId, int images)
    {
        var status = await tenant.CreateJobAsync(new JobRequest("fashion", "default"));
        var job = cluster.Client.GetGrain<IJobGrain>(status.JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(0, images)));
        return job;
    }
}

/// <summary>Evaluations hold the same running slots as jobs: they count in the tenant's concurrent-jobs quota.</summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationSlotTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_running_evaluation_takes_the_tenants_slot_and_gives_it_back_when_it_ends()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("evslots");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var limits = new JobLimits(MaxConcurrentJobs: 1, MaxRunningJobs: 10_000);

        var id = EvaluationDefinition.NewId();
        var evaluation = cluster.Client.GetGrain<IEvaluationJobGrain>(id);
        var request = new EvaluationRequest("fashion", "default", "pgd", [4.0 / 255], Steps: 10);   // long enough to be running at the job start
        await evaluation.CreateAsync(new EvaluationDefinition(tenantId, id, await tenant.GetVocabularyAsync("fashion"),
            await tenant.GetPromptConfigurationAsync("default"), request, DateTimeOffset.UtcNow));
        await evaluation.AddImagesAsync(tenantId, [.. Enumerable.Range(0, 64).Select(i =>
            new EvaluationImage($"e{i}.png", TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], TestModels.FashionPng(i)))]);
        await evaluation.StartAsync(tenantId, limits);
        Assert.Equal([id], (await quota.GetUsageAsync()).RunningJobs.AsEnumerable());

        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages([0, 1]));
        var refused = await Assert.ThrowsAsync<TaptQuotaException>(() => job.StartAsync(tenantId, limits));
        Assert.Equal(QuotaKind.ConcurrentJobs, refused.Kind);

        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((await evaluation.GetStatusAsync(tenantId)).State == JobState.Running && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(JobState.Completed, (await evaluation.GetStatusAsync(tenantId)).State);
        Assert.Empty((await quota.GetUsageAsync()).RunningJobs);
        Assert.Equal(JobState.Running, (await job.StartAsync(tenantId, limits)).State);
        await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
    }
}
