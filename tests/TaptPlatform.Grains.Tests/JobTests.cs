using System.Collections.Concurrent;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Core.Internal;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class JobTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_job_records_exactly_one_result_per_image_and_stores_inputs_results_and_audits()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant();
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, minimumConfidence: 0.5);
        var status = await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: 3));
        var job = cluster.Client.GetGrain<IJobGrain>(status.JobId);

        var observer = new RecordingObserver();
        var reference = cluster.Client.CreateObjectReference<IJobObserver>(observer);
        await job.SubscribeAsync(tenantId, reference);

        var inputMemory = cluster.Cluster.Silos.Select(s => s.ServiceProvider.GetRequiredService<InputMemory>()).ToList();
        long Held() => inputMemory.Sum(m => m.Used);
        var heldBefore = Held();
        var images = PlatformFixture.FashionImages(Enumerable.Range(0, 24));
        var receipt = await job.AddImagesAsync(tenantId, images);
        Assert.Equal(Enumerable.Range(0, 24), receipt.AcceptedIndices.AsEnumerable());
        // The accepted bytes stay in memory for dispatch until each image has its result.
        Assert.Equal(heldBefore + images.Sum(i => (long)i.Content.Length), Held());
        await job.StartAsync(tenantId);
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(2));
        Assert.Equal(heldBefore, Held());

        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(new JobCounts(24, 24, 0, done.Counts.Flagged), done.Counts);
        var page = await job.GetResultsAsync(tenantId, 0, 100);
        Assert.Equal(Enumerable.Range(0, 24), page.Items.Select(r => r.Index));
        Assert.All(page.Items, r => Assert.True(r.Succeeded));

        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(BlobArtifactStore.ContainerName(tenantId));
        var blobs = new List<string>();
        await foreach (var b in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = $"jobs/{status.JobId}/" })) blobs.Add(b.Name);
        Assert.Equal(24, blobs.Count(b => b.Contains("/inputs/", StringComparison.Ordinal)));
        Assert.Equal(24, blobs.Count(b => b.Contains("/results/", StringComparison.Ordinal)));
        Assert.Equal(done.Counts.Flagged, blobs.Count(b => b.Contains("/audit/", StringComparison.Ordinal)));

        var detail = await job.GetResultDetailAsync(tenantId, 5);
        Assert.Equal(page.Items[5] with { TopK = [] }, detail.Summary with { TopK = [] });
        Assert.Equal(page.Items[5].TopK, detail.Summary.TopK.AsEnumerable());
        Assert.NotNull(detail.Outcome);
        Assert.Equal(TestModels.Tiny, detail.Outcome!.Model);
        Assert.Single(detail.Outcome.StepMetrics);
        Assert.Equal(TestModels.FashionPng(5), await job.GetInputImageAsync(tenantId, 5));

        // Progress reached the observer: a step and a completion per image, and the final counts.
        await WaitUntil(() => observer.Completed.Count == 24 && observer.Progress.LastOrDefault()?.State == JobState.Completed, TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 24), observer.Completed.Keys.Order());
        Assert.Equal(Enumerable.Range(0, 24), observer.Steps.Select(s => s.ImageIndex).Distinct().Order());
    }

    [Fact]
    public async Task Subscribing_tells_a_renewal_from_a_job_reactivated_since_which_lost_its_observers()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant();
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        var reference = cluster.Client.CreateObjectReference<IJobObserver>(new RecordingObserver());

        Assert.False(await job.SubscribeAsync(tenantId, reference));   // first subscription
        Assert.True(await job.SubscribeAsync(tenantId, reference));    // renewal

        // As when its silo dies: a new activation of the job knows no observer, so the next renewal says so.
        await job.AsReference<IGrainManagementExtension>().DeactivateOnIdle();
        Assert.False(await job.SubscribeAsync(tenantId, reference));
        Assert.True(await job.SubscribeAsync(tenantId, reference));
    }

    [Fact]
    public async Task Images_are_stored_before_the_upload_is_acknowledged_and_bad_ones_are_rejected()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant();
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        var images = PlatformFixture.FashionImages([7, 8]).Add(new JobImage("broken.png", [0x89, 0x50, 0x4e, 0x47, 1, 2, 3])).Add(new JobImage("empty", []));

        var receipt = await job.AddImagesAsync(tenantId, images);

        Assert.Equal([0, 1], receipt.AcceptedIndices.ToArray());
        Assert.Equal(["broken.png", "empty"], receipt.Rejected.Select(r => r.Name));
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(BlobArtifactStore.ContainerName(tenantId));
        foreach (var i in receipt.AcceptedIndices)
        {
            var blob = await container.GetBlobClient(BlobArtifactStore.BlobName(job.GetPrimaryKeyString(), ArtifactKinds.Inputs, i)).DownloadContentAsync();
            Assert.Equal(images[i].Content, blob.Value.Content.ToArray());
        }
    }

    [Fact]
    public async Task Changing_a_vocabulary_does_not_change_a_submitted_job()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant();
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var created = await tenant.CreateJobAsync(new JobRequest("fashion", "default"));
        var v2 = await tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("fashion", ["shoe", "shirt", "bag"]));
        Assert.Equal(2, v2.Version);

        var job = cluster.Client.GetGrain<IJobGrain>(created.JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages([0, 1]));
        await job.StartAsync(tenantId);
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(1));

        Assert.Equal(1, done.VocabularyVersion);
        var results = await job.GetResultsAsync(tenantId, 0, 10);
        Assert.All(results.Items, r => Assert.Contains(r.Label, TestModels.FashionLabels));
        Assert.Equal(10, (await job.GetResultDetailAsync(tenantId, 0)).Outcome!.Probabilities.Length);
    }

    [Fact]
    public async Task A_cancelled_job_stops_and_keeps_its_recorded_results()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant();
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny, views: 64, steps: 8);
        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(0, 200)));
        await job.StartAsync(tenantId);

        var cancelled = await job.CancelAsync(tenantId);
        var later = await job.GetStatusAsync(tenantId);
        await Task.Delay(1000);
        var muchLater = await job.GetStatusAsync(tenantId);

        Assert.Equal(JobState.Cancelled, cancelled.State);
        Assert.Equal(JobState.Cancelled, muchLater.State);
        Assert.True(muchLater.Counts.Completed < 200);
        Assert.Equal(later.Counts.Completed, (await job.GetResultsAsync(tenantId, 0, 1000)).TotalResults);
        await Assert.ThrowsAsync<TaptRequestException>(() => job.StartAsync(tenantId));
    }

    internal static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
            await Task.Delay(50);
        }
    }

    internal sealed class RecordingObserver : IJobObserver
    {
        public ConcurrentQueue<ImageStepProgress> Steps { get; } = new();
        public ConcurrentDictionary<int, ImageResult> Completed { get; } = new();
        public ConcurrentQueue<JobProgress> Progress { get; } = new();
        public int DuplicateCompletions;

        public Task OnImageStep(ImageStepProgress progress)
        {
            Steps.Enqueue(progress);
            return Task.CompletedTask;
        }

        public Task OnImageCompleted(ImageCompleted completed)
        {
            if (!Completed.TryAdd(completed.Result.Index, completed.Result)) Interlocked.Increment(ref DuplicateCompletions);
            return Task.CompletedTask;
        }

        public Task OnJobProgress(JobProgress progress)
        {
            Progress.Enqueue(progress);
            return Task.CompletedTask;
        }
    }
}
