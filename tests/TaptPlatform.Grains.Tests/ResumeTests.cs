using System.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Placement;
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
        const int images = 120;
        var (tenantId, job, clock) = await StartJobAsync(client, "crash", seed: 11, firstImage: 100, images);

        // Crash (or stop) the accelerator silo mid-job.
        var status = await WaitForCompletedAsync(job, tenantId, 5);
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
        await AssertOneResultPerImageAsync(job, tenantId, images);
        var host = await client.GetGrain<IModelGrain>(TestModels.Tiny).DescribeAsync();
        Assert.Equal(joined.SiloAddress.ToString(), host.Silo);
    }

    [Fact]
    public async Task A_job_whose_silo_dies_between_state_writes_ends_with_exactly_one_result_per_image_keeping_those_reported_before()
    {
        // Two accelerator silos; the job's state is written when the job's state changes, never between results.
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString, roleOf: _ => SiloRoles.Cpu, jobs: o =>
        {
            o.StateWriteResults = 100_000;
            o.WatchdogPeriod = TimeSpan.FromMinutes(30);
            o.InputMemoryBytes = 16 * 1024;   // some images dispatched from memory, the rest read from their blobs
        });
        var client = cluster.Client;
        const int images = 80;
        var (tenantId, job, clock) = await StartJobAsync(client, "batch", seed: 12, firstImage: 300, images);
        var status = await WaitForCompletedAsync(job, tenantId, 5);
        var reported = (await job.GetResultsAsync(tenantId, 0, 1000)).Items;
        var silo = await client.GetGrain<IManagementGrain>(0).GetActivationAddress(job);
        var dying = cluster.Cluster.Silos.Single(s => s.SiloAddress.Equals(silo));
        var survivor = cluster.Cluster.Silos.First(s => s != dying);
        // Reported results exist as blobs only: the stored state is still the one written at the start.
        var stored = await ReadJobStateAsync(survivor, job);
        Assert.Equal(JobState.Running, stored.State);
        Assert.Empty(stored.Results);
        Assert.True(status.Counts.Remaining > 0, "the job finished before its silo could be killed");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: killing {dying.Name}, the job's silo, at {status.Counts} ({reported.Length} results read, none in the stored state)");
        await cluster.Cluster.KillSiloAsync(dying);

        // The next call activates the job on the surviving silo: it adopts the recorded results and finishes the rest.
        var done = await WaitThroughSiloLossAsync(job, tenantId, TimeSpan.FromMinutes(4));
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1}s: {done.State} {done.Counts}");
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(new JobCounts(images, images, 0, done.Counts.Flagged), done.Counts);
        var page = await AssertOneResultPerImageAsync(job, tenantId, images);
        var final = page.Items.ToDictionary(r => r.Index);
        foreach (var r in reported)
        {
            Assert.Equal(r.CompletedAt, final[r.Index].CompletedAt);
            Assert.Equal(r.Prediction, final[r.Index].Prediction);
        }
        // Completion wrote the state with every result (the status may show it while that write is still under way).
        var completed = await ReadJobStateAsync(survivor, job);
        for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30); completed.State != JobState.Completed && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(100);
            completed = await ReadJobStateAsync(survivor, job);
        }
        Assert.Equal(JobState.Completed, completed.State);
        Assert.Equal(images, completed.Results.Count);
    }

    /// <summary>A tenant with the fashion setup and a started job over Fashion-MNIST images firstImage.., with the clock started at the start.</summary>
    private static async Task<(string TenantId, IJobGrain Job, Stopwatch Clock)> StartJobAsync(IClusterClient client, string prefix, int seed, int firstImage, int images)
    {
        var tenantId = PlatformFixture.NewTenant(prefix);
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, TestModels.Tiny, views: 64, steps: 4);
        var job = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: seed))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(firstImage, images)));
        var clock = Stopwatch.StartNew();
        await job.StartAsync(tenantId);
        return (tenantId, job, clock);
    }

    private static async Task<JobStatus> WaitForCompletedAsync(IJobGrain job, string tenantId, int completed)
    {
        JobStatus status;
        do
        {
            await Task.Delay(50);
            status = await job.GetStatusAsync(tenantId);
        } while (status.Counts.Completed < completed);
        return status;
    }

    /// <summary>Results listed for indices 0..images−1 in order, and exactly one distinct result blob per image.</summary>
    private async Task<ResultPage> AssertOneResultPerImageAsync(IJobGrain job, string tenantId, int images)
    {
        var page = await job.GetResultsAsync(tenantId, 0, 1000);
        Assert.Equal(Enumerable.Range(0, images), page.Items.Select(r => r.Index));
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(BlobArtifactStore.ContainerName(tenantId));
        var results = new List<string>();
        await foreach (var b in container.GetBlobsAsync(new GetBlobsOptions { Prefix = $"jobs/{job.GetPrimaryKeyString()}/{ArtifactKinds.Results}/" })) results.Add(b.Name);
        Assert.Equal(images, results.Count);
        Assert.Equal(images, results.Distinct().Count());
        return page;
    }

    /// <summary>The job's state as stored, read through the silo's own grain storage provider.</summary>
    private static async Task<JobGrainState> ReadJobStateAsync(Orleans.TestingHost.InProcessSiloHandle silo, IJobGrain job)
    {
        var storage = silo.ServiceProvider.GetRequiredKeyedService<IGrainStorage>(GrainStorageNames.Jobs);
        var state = new GrainState<JobGrainState>(new JobGrainState());
        await storage.ReadStateAsync("job", job.GetGrainId(), state);
        return state.State ?? throw new InvalidOperationException("no stored job state");
    }

    /// <summary>Polls the job until it is final; calls fail while the cluster is still declaring its silo dead.</summary>
    private async Task<JobStatus> WaitThroughSiloLossAsync(IJobGrain job, string tenantId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return await PlatformFixture.WaitForJobAsync(job, tenantId, deadline - DateTime.UtcNow);
            }
            catch (Exception e) when (e is not TimeoutException && DateTime.UtcNow < deadline)
            {
                output.WriteLine($"waiting for the cluster: {e.GetType().Name}: {e.Message}");
                await Task.Delay(500);
            }
        }
    }
}
