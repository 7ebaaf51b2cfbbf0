using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>Cancelling an evaluation: it stops, gives its running slot back, keeps what it recorded, and a second cancel changes nothing.</summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationCancelTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_long_evaluation_cancelled_mid_way_stops_frees_its_slot_and_keeps_its_partial_outcomes()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("evcancel");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var limits = new JobLimits(MaxConcurrentJobs: 1, MaxRunningJobs: 10_000);
        // 64 images × 200 PGD steps in batches of 4: far longer than the test waits for its first batches.
        var evaluation = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 64,
            new EvaluationRequest("fashion", "default", "pgd", [4.0 / 255], Steps: 200, BatchSize: 4));
        await evaluation.StartAsync(tenantId, limits);

        var running = await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.OutcomesRecorded > 0, TimeSpan.FromMinutes(3));
        Assert.Equal(JobState.Running, running.State);
        var cancelled = await evaluation.CancelAsync(tenantId);

        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.InRange(cancelled.OutcomesRecorded, 1, cancelled.OutcomesTotal - 1);
        Assert.Equal(cancelled.OutcomesRecorded, (await evaluation.GetOutcomesAsync(tenantId)).Length);
        Assert.Empty((await cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId).GetUsageAsync()).RunningJobs);
        Assert.Contains("\"results\"", await evaluation.GetReportAsync(tenantId), StringComparison.Ordinal);

        // Idempotent: a second cancel answers the same state and changes nothing.
        var again = await evaluation.CancelAsync(tenantId);
        Assert.Equal(JobState.Cancelled, again.State);
        Assert.Equal(cancelled.FinishedAt, again.FinishedAt);
        Assert.Equal(cancelled.OutcomesRecorded, again.OutcomesRecorded);

        // The slot is free: another evaluation of the tenant starts under the limit of 1 and, the worker having stopped, completes.
        var next = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 2,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255], Steps: 1));
        Assert.Equal(JobState.Running, (await next.StartAsync(tenantId, limits)).State);
        var done = await EvaluationsForTests.WaitAsync(next, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(cancelled.OutcomesRecorded, (await evaluation.GetStatusAsync(tenantId)).OutcomesRecorded);
        await Assert.ThrowsAsync<TaptRequestException>(() => evaluation.StartAsync(tenantId, limits));
    }

    [Fact]
    public async Task An_open_evaluation_cancelled_never_starts_and_a_finished_one_stays_as_it_is()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("evcancel");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var open = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 2,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255], Steps: 1));
        Assert.Equal(JobState.Cancelled, (await open.CancelAsync(tenantId)).State);
        await Assert.ThrowsAsync<TaptRequestException>(() => open.StartAsync(tenantId));
        Assert.Empty((await cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId).GetUsageAsync()).RunningJobs);

        var finished = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 2,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255], Steps: 1));
        await finished.StartAsync(tenantId);
        var completed = await EvaluationsForTests.WaitAsync(finished, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.Equal(JobState.Completed, completed.State);
        Assert.Equal(JobState.Completed, (await finished.CancelAsync(tenantId)).State);
        await Assert.ThrowsAsync<TaptNotFoundException>(() => finished.CancelAsync(PlatformFixture.NewTenant("other")));
    }
}
