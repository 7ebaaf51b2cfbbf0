using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>An evaluation's start charges the tenant's daily images (images × ε) or is refused as a job's upload would be.</summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationQuotaTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_start_takes_images_times_epsilons_of_the_daily_quota_and_is_refused_past_it()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("evquota");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var evaluation = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 3,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255, 2.0 / 255], Steps: 1));

        // 3 images × 2 ε = 6 images: refused under a limit of 5, with the tenant's slots given back and the evaluation still open.
        var refused = await Assert.ThrowsAsync<TaptQuotaException>(() => evaluation.StartAsync(tenantId, new JobLimits(4, 10_000, ImagesPerDay: 5)));
        Assert.Equal(QuotaKind.ImagesPerDay, refused.Kind);
        Assert.Equal(5, refused.Limit);
        Assert.True(refused.RetryAfter > TimeSpan.Zero);
        var usage = await quota.GetUsageAsync();
        Assert.Equal(0, usage.ImagesToday);
        Assert.Empty(usage.RunningJobs);
        Assert.Equal(JobState.Open, (await evaluation.GetStatusAsync(tenantId)).State);

        Assert.Equal(JobState.Running, (await evaluation.StartAsync(tenantId, new JobLimits(4, 10_000, ImagesPerDay: 6))).State);
        Assert.Equal(6, (await quota.GetUsageAsync()).ImagesToday);
        await evaluation.StartAsync(tenantId, new JobLimits(4, 10_000, ImagesPerDay: 6));   // a repeated start charges nothing more
        Assert.Equal(6, (await quota.GetUsageAsync()).ImagesToday);
        await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
    }
}
