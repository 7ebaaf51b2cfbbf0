using System.Net;
using System.Net.Sockets;
using Azure.Data.Tables;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Silo.Hosting;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class SiloHostTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_silo_host_runs_jobs_on_azure_table_clustering_and_storage_from_configuration()
    {
        var clusterId = "host-" + Guid.NewGuid().ToString("N")[..12];
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tapt:Accelerator"] = "cpu",
            ["Tapt:Engine:Threads"] = "1",
            ["Tapt:Engine:MaxBatchSize"] = "4",
            ["Tapt:Models:Directories:tiny"] = TestModels.TinyDirectory,
            ["Tapt:Storage:ConnectionString"] = platform.Storage.ConnectionString,
            ["Tapt:Storage:ClusteringTable"] = "TaptClusterTests",
            ["Tapt:ApiKeys:SigningKey"] = "api-key-signing-key-of-the-silo-host-test-0123456789",
        });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var storage = builder.Configuration.TaptStorage();
        builder.UseOrleans(silo => silo
            .Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = clusterId; })
            .ConfigureEndpoints(IPAddress.Loopback, FreePort(), FreePort())
            .UseTaptAzureClustering(storage)
            .UseTaptAzureReminders(storage)
            .AddTaptStorage(storage)
            .AddTaptApiKeySigning(builder.Configuration)
            .UseTaptRole(builder.Configuration));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            var tenantId = PlatformFixture.NewTenant("host");
            var tenant = await PlatformFixture.TenantWithFashionSetupAsync(grains, tenantId, TestModels.Tiny);
            var job = grains.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
            await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages([3, 4, 5]));
            await job.StartAsync(tenantId);
            var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(1));
            Assert.Equal(3, done.Counts.Succeeded);
            Assert.Equal("cpu", (await grains.GetGrain<IModelGrain>(TestModels.Tiny).DescribeAsync()).Accelerator);

            var members = new TableClient(platform.Storage.ConnectionString, "TaptClusterTests");
            var rows = 0;
            await foreach (var _ in members.QueryAsync<TableEntity>(e => e.PartitionKey == clusterId)) rows++;
            Assert.True(rows > 0, "the silo did not register in the Azure membership table");
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
