using Azure.Storage.Blobs;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>A tenant's retention: its periods within the operator's, and the sweep that deletes what expired.</summary>
[Collection(PlatformCollection.Name)]
public sealed class RetentionTests(PlatformFixture platform)
{
    [Fact]
    public async Task Expired_inputs_are_deleted_by_the_sweep_while_results_stay_and_the_job_still_shows_them()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("retain");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, steps: 1);
        var status = await tenant.CreateJobAsync(new JobRequest("fashion", "default"));
        var job = cluster.Client.GetGrain<IJobGrain>(status.JobId);
        Assert.Empty((await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages([0, 1, 2]))).Rejected);
        await job.StartAsync(tenantId);
        Assert.Equal(3, (await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2))).Counts.Succeeded);
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(TenantContainers.NameOf(tenantId));
        Assert.Equal(3, await CountAsync(container, status.JobId, ArtifactKinds.Inputs));
        var results = await CountAsync(container, status.JobId, ArtifactKinds.Results);
        Assert.True(results > 0);

        var retention = cluster.Client.GetGrain<IRetentionGrain>(tenantId);
        var before = await retention.GetAsync();
        Assert.Equal(TimeSpan.FromDays(30), before.OperatorDefault.Inputs);
        Assert.Equal(before.OperatorDefault, before.Effective);

        // Longer than the operator's, or shorter than the minimum: refused, and nothing changes.
        var tooLong = await Assert.ThrowsAsync<TaptRequestException>(() => retention.SetAsync(new RetentionPolicy(Inputs: TimeSpan.FromDays(31))));
        Assert.Contains("inputs: at most 30.00:00:00", tooLong.Message);
        await Assert.ThrowsAsync<TaptRequestException>(() => retention.SetAsync(new RetentionPolicy(Results: TimeSpan.FromMilliseconds(10))));
        Assert.Equal(before.Effective, (await retention.GetAsync()).Effective);

        // A sweep before anything expired deletes nothing.
        Assert.Empty((await retention.SweepNowAsync()).Deleted);
        // A staging blob left by an upload whose process died (the test cluster's staging period: 2 s).
        var orphan = container.GetBlobClient(ImageStaging.Prefix + "jobs/" + status.JobId + "/orphan");
        await orphan.UploadAsync(BinaryData.FromBytes(TestModels.FashionPng(5)));
        var set = await retention.SetAsync(new RetentionPolicy(Inputs: TimeSpan.FromSeconds(2)));
        Assert.Equal(TimeSpan.FromSeconds(2), set.Effective.Inputs);
        Assert.Equal(TimeSpan.FromDays(365), set.Effective.Results);
        await Task.Delay(TimeSpan.FromSeconds(3));

        var sweep = await retention.SweepNowAsync();
        Assert.NotNull(sweep.Finished);
        Assert.Equal(3, sweep.Deleted[ArtifactKinds.Inputs]);
        Assert.Equal(1, sweep.Deleted["staging"]);
        Assert.Equal([ArtifactKinds.Inputs, "staging"], sweep.Deleted.Keys.Order());
        Assert.False((await orphan.ExistsAsync()).Value);
        Assert.Equal(0, await CountAsync(container, status.JobId, ArtifactKinds.Inputs));
        Assert.Equal(results, await CountAsync(container, status.JobId, ArtifactKinds.Results));
        Assert.Equal(3, (await job.GetResultsAsync(tenantId, 0, 10)).Items.Length);

        // The tenant's trail says what the sweep deleted.
        var trail = new AuditTrailStore(new TenantContainers(new BlobServiceClient(platform.Storage.ConnectionString)));
        var entries = new List<TrailEntry>();
        await foreach (var (entry, _) in trail.ReadNewestFirstAsync(tenantId, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1)))
            entries.Add(entry);
        var recorded = Assert.Single(entries, e => e.Kind == Retention.RetentionGrain.TrailKind);
        Assert.Equal("retention", recorded.Actor);
        Assert.Equal("3", recorded.Target[ArtifactKinds.Inputs]);

        // Idempotent: the next sweep finds nothing more; the totals keep what was deleted.
        Assert.Empty((await retention.SweepNowAsync()).Deleted);
        var after = await retention.GetAsync();
        Assert.Equal(3, after.DeletedTotal[ArtifactKinds.Inputs]);
        Assert.True(after.LastSweep!.Finished >= sweep.Finished);
    }

    private static async Task<int> CountAsync(BlobContainerClient container, string jobId, string kind)
    {
        var n = 0;
        await foreach (var _ in container.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, BlobArtifactStore.JobPrefix(jobId) + kind + "/", default)) n++;
        return n;
    }
}
