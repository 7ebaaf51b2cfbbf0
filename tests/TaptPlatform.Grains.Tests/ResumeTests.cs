using System.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class ResumeTests(PlatformFixture platform, ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_job_waits_when_its_accelerator_silo_goes_away_and_resumes_on_a_new_one_with_exactly_one_result_per_image(bool crash)
    {
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var client = cluster.Client;
        var tenantId = PlatformFixture.NewTenant("crash");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, TestModels.Tiny, views: 64, steps: 4);
        var job = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: 11))).JobId);
        const int images = 120;
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(100, images)));
        var clock = Stopwatch.StartNew();
        await job.StartAsync(tenantId);

        // Crash (or stop) the accelerator silo mid-job.
        JobStatus status;
        do
        {
            await Task.Delay(50);
            status = await job.GetStatusAsync(tenantId);
        } while (status.Counts.Completed < 5);
        Assert.Equal(JobState.Running, status.State);
        Assert.True(status.Counts.Remaining > 0, "the job finished before the silo could be stopped");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: {(crash ? "killing" : "stopping")} the accelerator silo at {status.Counts}");
        if (crash) await cluster.Cluster.KillSiloAsync(cluster.Silo(1));
        else await cluster.Cluster.StopSiloAsync(cluster.Silo(1));

        // Without an accelerator silo the job waits: no progress, and it says why.
        string? waiting = null;
        for (var i = 0; i < 40 && waiting is null; i++)
        {
            await Task.Delay(100);
            var s = await job.GetStatusAsync(tenantId);
            waiting = s.Waiting;
        }
        var beforeJoin = await job.GetStatusAsync(tenantId);
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: before a new silo joins {beforeJoin.Counts}, waiting: {waiting}");
        Assert.Equal(JobState.Running, beforeJoin.State);
        Assert.True(beforeJoin.Counts.Remaining > 0);
        Assert.NotNull(waiting);

        // A new accelerator silo joins; the job resumes and completes.
        var joined = await cluster.Cluster.StartAdditionalSiloAsync();
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: {joined.Name} joined");
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(3));
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: {done.State} {done.Counts}");

        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(new JobCounts(images, images, 0, done.Counts.Flagged), done.Counts);
        var page = await job.GetResultsAsync(tenantId, 0, 1000);
        Assert.Equal(Enumerable.Range(0, images), page.Items.Select(r => r.Index));
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(BlobArtifactStore.ContainerName(tenantId));
        var results = new List<string>();
        await foreach (var b in container.GetBlobsAsync(new GetBlobsOptions { Prefix = $"jobs/{job.GetPrimaryKeyString()}/{ArtifactKinds.Results}/" })) results.Add(b.Name);
        Assert.Equal(images, results.Count);
        Assert.Equal(images, results.Distinct().Count());
        var host = await client.GetGrain<IModelGrain>(TestModels.Tiny).DescribeAsync();
        Assert.Equal(joined.SiloAddress.ToString(), host.Silo);
    }
}
