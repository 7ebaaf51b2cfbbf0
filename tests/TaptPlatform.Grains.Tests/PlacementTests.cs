using TaptPlatform.Contracts;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class PlacementTests(PlatformFixture platform)
{
    [Fact]
    public async Task Model_grains_activate_only_on_the_accelerator_silo()
    {
        var cluster = await platform.ClusterAsync();
        var accelerator = cluster.Silo(1).SiloAddress.ToString();
        var hosts = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => cluster.Client.GetGrain<IModelGrain>($"model-{i}").DescribeAsync()));
        Assert.All(hosts, h =>
        {
            Assert.Equal(accelerator, h.Silo);
            Assert.Equal(SiloRoles.Cpu, h.Accelerator);
        });
    }

    [Fact]
    public async Task Tenant_and_job_grains_may_live_on_the_cpu_only_silo()
    {
        var cluster = await platform.ClusterAsync();
        var cpuOnly = cluster.Silo(0).SiloAddress;
        // Other grain types are placed on any silo: activate tenants until one lands on the cpu-only silo.
        var found = false;
        for (var round = 0; round < 10 && !found; round++)
        {
            var tenants = Enumerable.Range(0, 20).Select(_ => cluster.Client.GetGrain<ITenantGrain>(PlatformFixture.NewTenant("p"))).ToArray();
            await Task.WhenAll(tenants.Select(t => t.ListJobsAsync()));
            found = tenants.Any(t => cluster.Cluster.TryGetGrainContext(t.GetGrainId(), out var ctx) && cpuOnly.Equals(ctx.Address.SiloAddress));
        }
        Assert.True(found, "no tenant grain was ever placed on the cpu-only silo");
    }

    [Fact]
    public void Jobs_spread_over_model_grain_shards_by_a_stable_hash_of_the_job_id()
    {
        Assert.Equal("m", ModelGrain.KeyFor("m", "job-0123456789", 1));
        var keys = Enumerable.Range(0, 200).Select(i => ModelGrain.KeyFor("m", $"job-{i:D8}", 4)).ToArray();
        Assert.Equal(keys, Enumerable.Range(0, 200).Select(i => ModelGrain.KeyFor("m", $"job-{i:D8}", 4)));
        Assert.Equal(["m@0", "m@1", "m@2", "m@3"], keys.Distinct().Order());
        Assert.All(keys, k => Assert.Equal("m", ModelGrain.ModelOf(k)));
    }

    [Theory]
    [InlineData("cpu", true)]
    [InlineData("cuda", true)]
    [InlineData("cpu-only", false)]
    [InlineData("CPU-ONLY", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void Only_silos_declaring_an_accelerator_may_run_tapt(string? accelerator, bool expected) =>
        Assert.Equal(expected, SiloRoles.HasAccelerator(accelerator));
}
