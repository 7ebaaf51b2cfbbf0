using System.Collections.Immutable;
using System.Text.Json;
using Azure.Storage.Blobs;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>Prompt training jobs on the tiny model: a run to a listed artifact version, quota, cancel, and resume after the accelerator silo died.</summary>
[Collection(PlatformCollection.Name)]
public sealed class PromptTrainingTests(PlatformFixture platform)
{
    /// <summary>The first <paramref name="perClass"/> Fashion-MNIST test images of every class, labelled.</summary>
    public static ImmutableArray<EvaluationImage> Images(int perClass) =>
    [
        .. Enumerable.Range(0, 10).SelectMany(c => Enumerable.Range(0, TestModels.FashionTest.Count).Where(i => TestModels.FashionTest.Labels[i] == c).Take(perClass))
            .Select(i => new EvaluationImage($"t{i}.png", TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], TestModels.FashionPng(i))),
    ];

    public static async Task<IPromptTrainingJobGrain> CreateAsync(IGrainFactory client, string tenantId, PromptTrainingRequest request, int perClass)
    {
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, TestModels.Tiny);
        var id = PromptTrainingDefinition.NewId();
        var job = client.GetGrain<IPromptTrainingJobGrain>(id);
        await job.CreateAsync(new PromptTrainingDefinition(tenantId, id, await tenant.GetVocabularyAsync("fashion"), request, DateTimeOffset.UtcNow));
        var receipt = await job.AddImagesAsync(tenantId, Images(perClass));
        Assert.Equal(10 * perClass, receipt.TotalImages);
        return job;
    }

    /// <summary>The checkpoint blobs a training job keeps, by the epochs they hold.</summary>
    private async Task<List<int>> CheckpointsAsync(string tenantId, string jobId) =>
        [.. (await new BlobArtifactStore(new BlobServiceClient(platform.Storage.ConnectionString)).ListAsync(tenantId, jobId))
            .Select(a => a.Name).Where(n => n.Contains("/results/checkpoint-", StringComparison.Ordinal))
            .Select(n => int.Parse(n[(n.LastIndexOf('-') + 1)..n.IndexOf('.', n.LastIndexOf('-'))], System.Globalization.CultureInfo.InvariantCulture)).Order()];

    /// <summary>Asserts that a job whose run ended keeps no checkpoint blob (the end deletes them just after it is visible).</summary>
    private async Task AssertNoCheckpointsAsync(string tenantId, string jobId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var left = await CheckpointsAsync(tenantId, jobId);
            if (left.Count == 0) return;
            if (DateTime.UtcNow > deadline) Assert.Fail($"checkpoints left after epochs {string.Join(", ", left)}");
            await Task.Delay(200);
        }
    }

    public static async Task<PromptTrainingStatus> WaitAsync(IPromptTrainingJobGrain job, string tenantId, Func<PromptTrainingStatus, bool> until, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var s = await job.GetStatusAsync(tenantId);
            if (until(s)) return s;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"training {s.JobId} still {s.State} ({s.EpochsDone}/{s.EpochsTotal}, {s.Waiting}) after {timeout}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_training_job_ends_with_a_listed_artifact_version_and_a_report_and_its_images_count_against_the_quota()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("train");
        var request = new PromptTrainingRequest("fashion", TestModels.Tiny, "mine", Epochs: 2, ShotsPerClass: 2, ValidationFraction: 0.3, BatchSize: 8);
        var job = await CreateAsync(cluster.Client, tenantId, request, perClass: 3);
        var quota = cluster.Client.GetGrain<ITenantQuotaGrain>(tenantId);
        var started = await job.StartAsync(tenantId);
        Assert.Equal(JobState.Running, started.State);
        Assert.Equal(20, started.TrainImages);
        Assert.Equal(10, started.ValidationImages);
        // Charged at start: every training image once per epoch of each prompt set (2 × 2).
        Assert.Equal(80, (await quota.GetUsageAsync()).ImagesToday);

        var done = await WaitAsync(job, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.True(done.State == JobState.Completed, done.Error);
        Assert.Equal(["adversarial", "adversarial", "clean", "clean"], done.Curve.Select(e => e.Prompts));
        Assert.Equal([1, 2, 1, 2], done.Curve.Select(e => e.Epoch));
        Assert.All(done.Curve, e => Assert.Equal(10, e.Validation.Images));
        Assert.All(done.Curve.Take(2), e => Assert.True(e.Validation.Robust <= e.Validation.Clean));
        Assert.NotNull(done.Before);
        Assert.Equal(done.Curve[1].Validation, done.After);
        var artifact = done.Artifact!;
        Assert.Equal(("mine", 1, "tenant", TestModels.Tiny, "VLI"), (artifact.Name, artifact.Version, artifact.Owner, artifact.Model, artifact.Design));
        Assert.True(artifact.HasCleanPrompts && artifact.HasStatistics);
        var listed = Assert.Single(await cluster.Client.GetGrain<IPromptArtifactsGrain>(tenantId).ListAsync());
        Assert.Equal(artifact.Sha256, listed.Sha256);
        Assert.Equal(done.JobId, listed.TrainingJobId);
        await AssertNoCheckpointsAsync(tenantId, done.JobId);   // the run ended: nothing resumes from them

        using var report = JsonDocument.Parse(await job.GetReportAsync(tenantId));
        Assert.Equal("tapt-prompt-training-report/1", report.RootElement.GetProperty("schema").GetString());
        Assert.Equal(4, report.RootElement.GetProperty("curve").GetArrayLength());
        Assert.Equal(done.Before!.Clean, report.RootElement.GetProperty("before").GetProperty("clean").GetDouble());
        Assert.Equal(1, report.RootElement.GetProperty("artifact").GetProperty("version").GetInt32());

        // Another tenant sees none of it.
        await Assert.ThrowsAsync<TaptNotFoundException>(() => job.GetStatusAsync(PlatformFixture.NewTenant("other")));
    }

    [Fact]
    public async Task Too_few_images_per_label_and_wrong_labels_are_refused_and_a_cancelled_job_keeps_no_artifact()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("trainbad");
        var job = await CreateAsync(cluster.Client, tenantId, new PromptTrainingRequest("fashion", TestModels.Tiny, "never", Epochs: 50, BatchSize: 4), perClass: 1);
        var wrong = await job.AddImagesAsync(tenantId, [new EvaluationImage("x.png", "not-a-label", TestModels.FashionPng(0))]);
        Assert.Contains("UnknownLabel", Assert.Single(wrong.Rejected).Reason);
        var e = await Assert.ThrowsAsync<TaptRequestException>(() => job.StartAsync(tenantId));
        Assert.Contains("at least two", e.Message);
        Assert.Equal(JobState.Open, (await job.GetStatusAsync(tenantId)).State);

        await job.AddImagesAsync(tenantId, Images(2));
        Assert.Equal(JobState.Running, (await job.StartAsync(tenantId)).State);
        var running = await WaitAsync(job, tenantId, s => s.EpochsDone >= 1 || s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.True(running.State == JobState.Running, $"the training stopped before it was cancelled: {running.State} ({running.Error})");
        var cancelled = await job.CancelAsync(tenantId);
        Assert.True(cancelled.State == JobState.Cancelled && cancelled.Error == "cancelled", $"{cancelled.State}: {cancelled.Error}");
        await Task.Delay(500);
        Assert.Null((await job.GetStatusAsync(tenantId)).Artifact);
        Assert.Empty(await cluster.Client.GetGrain<IPromptArtifactsGrain>(tenantId).ListAsync());
        await AssertNoCheckpointsAsync(tenantId, cancelled.JobId);
    }

    [Fact]
    public async Task A_worker_step_returns_its_checkpoint_and_writes_none_itself_so_a_step_the_job_gave_up_on_leaves_nothing()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("trainstep");
        var request = new PromptTrainingRequest("fashion", TestModels.Tiny, "direct", Epochs: 1, BatchSize: 4);
        var job = await CreateAsync(cluster.Client, tenantId, request, perClass: 1);
        var jobId = (await job.GetStatusAsync(tenantId)).JobId;
        var vocabulary = await cluster.Client.GetGrain<ITenantGrain>(tenantId).GetVocabularyAsync("fashion");
        var work = new PromptTrainingWork(tenantId, jobId, request, [.. vocabulary.Labels.Select(l => l.Label)], PromptTexts.Of(vocabulary),
            [.. Enumerable.Range(0, 10)], [.. Enumerable.Range(0, 8)], [8, 9]);
        var worker = cluster.Client.GetGrain<IPromptTrainingWorkerGrain>(cluster.Silo(1).SiloAddress.ToParsableString());

        var (epoch, checkpoint) = await worker.TrainEpochAsync(work, 0);

        Assert.Equal(("adversarial", 1), (epoch.Prompts, epoch.Epoch));
        // A safetensors file: an 8-byte little-endian header length, then that much JSON.
        Assert.True(checkpoint.Length > 8 && BitConverter.ToInt64(checkpoint, 0) < checkpoint.Length, $"{checkpoint.Length} bytes");
        Assert.Empty(await CheckpointsAsync(tenantId, jobId));
    }

    [Fact]
    public async Task A_training_job_that_asks_again_for_its_artifact_version_gets_the_one_it_made_and_no_second()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("trainonce");
        await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var staging = new ImageStaging(new TenantContainers(new BlobServiceClient(platform.Storage.ConnectionString)));
        async Task<StagedPromptArtifact> StageAsync(string? trainingJob)
        {
            var id = Guid.NewGuid().ToString("N");
            await using var file = File.OpenRead(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"));
            var (length, sha) = (await staging.StageBlobAsync(tenantId, PromptArtifactStore.StagingBlobName(id), ReadOnlyMemory<byte>.Empty, file, long.MaxValue, default))!.Value;
            return new StagedPromptArtifact(id, length, sha, trainingJob);
        }
        var artifacts = cluster.Client.GetGrain<IPromptArtifactsGrain>(tenantId);

        // The job's silo died after the version was added and before the job saved it: the resumed job asks again.
        var first = await artifacts.AddVersionAsync("own", TestModels.Tiny, await StageAsync("job-a"));
        var again = await artifacts.AddVersionAsync("own", TestModels.Tiny, await StageAsync("job-a"));
        Assert.Equal((1, "job-a"), (first.Version, first.TrainingJobId));
        Assert.Equal(first, again);
        // Another job, and an upload (no job), each make a version of their own.
        Assert.Equal(2, (await artifacts.AddVersionAsync("own", TestModels.Tiny, await StageAsync("job-b"))).Version);
        var uploaded = await artifacts.AddVersionAsync("own", TestModels.Tiny, await StageAsync(null));
        Assert.Equal((3, null), (uploaded.Version, uploaded.TrainingJobId));
        Assert.Equal([1, 2, 3], (await artifacts.ListAsync()).Select(a => a.Version));
        // Every staging blob is gone, the repeated one too.
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(TenantContainers.NameOf(tenantId));
        await foreach (var blob in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = "staging/" })) Assert.Fail($"staging blob left: {blob.Name}");
    }

    [Fact]
    public async Task A_training_job_resumes_from_its_last_checkpoint_on_a_new_accelerator_silo_with_the_curve_of_an_uninterrupted_run()
    {
        var request = new PromptTrainingRequest("fashion", TestModels.Tiny, "resumed", Epochs: 8, ShotsPerClass: 4, ValidationFraction: 0.2, BatchSize: 8, Seed: 4);
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var tenantId = PlatformFixture.NewTenant("trresume");
        var job = await CreateAsync(cluster.Client, tenantId, request, perClass: 5);
        await job.StartAsync(tenantId);
        var before = await WaitAsync(job, tenantId, s => s.EpochsDone >= 2 || s.State != JobState.Running, TimeSpan.FromMinutes(3));
        Assert.True(before.State == JobState.Running && before.EpochsDone < before.EpochsTotal, "the training finished before its silo could be killed");

        var killed = cluster.Silo(1).SiloAddress.ToString();
        await cluster.Cluster.KillSiloAsync(cluster.Silo(1));
        var waiting = await WaitAsync(job, tenantId, s => s.Waiting is not null || s.State != JobState.Running, TimeSpan.FromMinutes(2));
        Assert.Equal(JobState.Running, waiting.State);
        // The next epoch starts from the last recorded one's checkpoint; the ones before it are gone.
        var kept = await CheckpointsAsync(tenantId, waiting.JobId);
        Assert.Contains(waiting.EpochsDone, kept);
        Assert.All(kept, e => Assert.True(e >= waiting.EpochsDone, $"checkpoint after epoch {e} kept while {waiting.EpochsDone} are done"));
        await cluster.Cluster.StartAdditionalSiloAsync();
        var done = await WaitAsync(job, tenantId, s => s.State != JobState.Running, TimeSpan.FromMinutes(4));
        Assert.True(done.State == JobState.Completed, done.Error);
        Assert.Equal(16, done.Curve.Length);
        Assert.Contains(done.Curve, e => e.Silo == killed);
        Assert.Contains(done.Curve, e => e.Silo != killed);
        await AssertNoCheckpointsAsync(tenantId, done.JobId);

        // The same training, uninterrupted, on the shared cluster: the same curve.
        var shared = await platform.ClusterAsync();
        var other = PlatformFixture.NewTenant("trresume");
        var single = await CreateAsync(shared.Client, other, request, perClass: 5);
        await single.StartAsync(other);
        var straight = await WaitAsync(single, other, s => s.State != JobState.Running, TimeSpan.FromMinutes(4));
        Assert.Equal(straight.Curve.Select(e => (e.Loss, e.TrainCleanAccuracy, e.Validation)), done.Curve.Select(e => (e.Loss, e.TrainCleanAccuracy, e.Validation)));
        Assert.Equal(straight.After, done.After);
    }
}
