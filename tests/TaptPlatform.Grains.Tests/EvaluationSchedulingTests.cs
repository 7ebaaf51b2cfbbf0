using System.Text.Json;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>
/// Evaluations are split into units (one batch at one ε) that the accelerator silos' executors take tenant by tenant, so a
/// small evaluation is not stuck behind a large one of another tenant, and an evaluation's units spread over every accelerator silo.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class EvaluationSchedulingTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_small_evaluation_of_one_tenant_finishes_while_a_large_one_of_another_started_first_is_far_from_done()
    {
        var cluster = await platform.ClusterAsync();
        var (a, tenantA) = await TenantAsync(cluster, "fair-a");
        var (b, tenantB) = await TenantAsync(cluster, "fair-b");
        // Large: 64 images × 3 ε × 30 steps in batches of 4 (48 units). Before units, its first ε alone (64 outcomes) ran before anything else.
        var large = await EvaluationsForTests.CreateAsync(cluster.Client, tenantA, a, images: 64,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255, 2.0 / 255, 4.0 / 255], Steps: 30, BatchSize: 4));
        var small = await EvaluationsForTests.CreateAsync(cluster.Client, tenantB, b, images: 2,
            new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255], Steps: 1, BatchSize: 4));

        await large.StartAsync(a);
        await EvaluationsForTests.WaitAsync(large, a, s => s.OutcomesRecorded > 0, TimeSpan.FromMinutes(3));   // A's units are queued and running
        await small.StartAsync(b);
        var done = await EvaluationsForTests.WaitAsync(small, b, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        var largeThen = await large.GetStatusAsync(a);

        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(JobState.Running, largeThen.State);
        Assert.True(largeThen.OutcomesRecorded < largeThen.OutcomesTotal / 4,
            $"the large evaluation had {largeThen.OutcomesRecorded} of {largeThen.OutcomesTotal} outcomes when the small one finished");
        await large.CancelAsync(a);
    }

    [Fact]
    public async Task An_evaluations_units_run_on_every_accelerator_silo_and_give_the_results_of_one_run()
    {
        // Silo 0 cpu-only, silos 1 and 2 cpu accelerators. PGD draws its random start, Square its squares, from the carried cursor.
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString, initialSilos: 3);
        var tenantId = PlatformFixture.NewTenant("spread");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var pgd = new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255, 4.0 / 255], Steps: 3, Seed: 3, BatchSize: 2);
        // Two ε each: the report names the silo of each ε's last unit, and those differ.
        EvaluationRequest[] requests = [pgd, pgd with { Attack = "square", Queries = 20 }];
        var spread = await RunAllAsync(cluster, tenant, tenantId, requests);
        var accelerators = new[] { cluster.Silo(1), cluster.Silo(2) }.Select(s => s.SiloAddress.ToString()).ToHashSet();
        foreach (var evaluation in spread)
        {
            var report = JsonDocument.Parse(await evaluation.GetReportAsync(tenantId)).RootElement;
            var silos = report.GetProperty("cost").GetProperty("silos").EnumerateArray().Select(s => s.GetString()!).ToHashSet();
            Assert.Equal(accelerators, silos);
        }

        // The same outcomes as one uninterrupted run of the same batches (the shared cluster's single accelerator runs it).
        var shared = await platform.ClusterAsync();
        var other = PlatformFixture.NewTenant("spread");
        var single = await RunAllAsync(shared, await PlatformFixture.TenantWithFashionSetupAsync(shared.Client, other, TestModels.Tiny), other, requests);
        for (var r = 0; r < requests.Length; r++)
        {
            Assert.Equal((await single[r].GetOutcomesAsync(other)).Select(o => o with { Seconds = 0 }), (await spread[r].GetOutcomesAsync(tenantId)).Select(o => o with { Seconds = 0 }));
            Assert.Single(JsonDocument.Parse(await single[r].GetReportAsync(other)).RootElement.GetProperty("cost").GetProperty("silos").EnumerateArray());
        }
        Assert.All(await spread[1].GetOutcomesAsync(tenantId), o => Assert.NotNull(o.Queries));
    }

    /// <summary>Evaluations of the first 6 test images with each request, run side by side to completion.</summary>
    private static async Task<IEvaluationJobGrain[]> RunAllAsync(TaptCluster cluster, ITenantGrain tenant, string tenantId, EvaluationRequest[] requests)
    {
        var evaluations = new List<IEvaluationJobGrain>();
        foreach (var request in requests)
        {
            var evaluation = await EvaluationsForTests.CreateAsync(cluster.Client, tenant, tenantId, images: 6, request);
            await evaluation.StartAsync(tenantId);
            evaluations.Add(evaluation);
        }
        foreach (var evaluation in evaluations)
            Assert.Equal(JobState.Completed, (await EvaluationsForTests.WaitAsync(evaluation, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3))).State);
        return [.. evaluations];
    }

    private static async Task<(string TenantId, ITenantGrain Tenant)> TenantAsync(TaptCluster cluster, string prefix)
    {
        var tenantId = PlatformFixture.NewTenant(prefix);
        return (tenantId, await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny));
    }
}
