using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>An evaluation whose accelerator silo dies waits, then resumes each ε at its saved cursor on a new silo, with the outcomes of an uninterrupted run.</summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationResumeTests(PlatformFixture platform)
{
    [Fact]
    public async Task An_evaluation_resumes_on_a_new_accelerator_silo_with_the_outcomes_of_an_uninterrupted_run()
    {
        var request = new EvaluationRequest("fashion", "default", "pgd", [4.0 / 255], Steps: 40, Seed: 5, BatchSize: 2);
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var tenantId = PlatformFixture.NewTenant("evresume");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var evaluation = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 24, request);
        await evaluation.StartAsync(tenantId);
        var before = await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.OutcomesRecorded >= 2, TimeSpan.FromMinutes(3));
        Assert.True(before.OutcomesRecorded < before.OutcomesTotal, "the evaluation finished before its silo could be killed");

        await cluster.Cluster.KillSiloAsync(cluster.Silo(1));
        var waiting = await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.Waiting is not null || s.State != JobState.Running, TimeSpan.FromMinutes(2));
        Assert.Equal(JobState.Running, waiting.State);
        await cluster.Cluster.StartAdditionalSiloAsync();
        var done = await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(4));
        Assert.Equal(JobState.Completed, done.State);
        var outcomes = await evaluation.GetOutcomesAsync(tenantId);
        Assert.Equal(Enumerable.Range(0, 24), outcomes.Select(o => o.Index).Order());

        // The same evaluation, uninterrupted, on the shared cluster.
        var shared = await platform.ClusterAsync();
        var other = PlatformFixture.NewTenant("evresume");
        var single = await EvaluationsForTests.CreateAsync(shared.Client, await PlatformFixture.TenantWithFashionSetupAsync(shared.Client, other, TestModels.Tiny), other, 24, request);
        await single.StartAsync(other);
        await EvaluationsForTests.WaitAsync(single, other, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.Equal((await single.GetOutcomesAsync(other)).Select(o => o with { Seconds = 0 }), outcomes.Select(o => o with { Seconds = 0 }));
    }
}
