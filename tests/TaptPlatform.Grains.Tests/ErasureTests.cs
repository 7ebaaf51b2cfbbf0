using System.Collections.Immutable;
using Azure.Storage.Blobs;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;
using Xunit.Abstractions;

namespace TaptPlatform.Grains.Tests;

/// <summary>
/// Tenant erasure: keys revoked before it answers, work cancelled, every blob, row and grain state of the tenant gone
/// (checked by listing the whole storage account), another tenant untouched, a signed summary, and an erasure that
/// survives the death of the silo running it.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class ErasureTests(PlatformFixture platform, ITestOutputHelper output)
{
    private const string SigningKey = "api-key-signing-key-of-the-grain-tests-0123456789";

    [Fact]
    public async Task Erasing_a_tenant_removes_its_jobs_evaluation_reviews_trail_and_prompt_artifact_and_leaves_another_tenant_as_it_was()
    {
        var cluster = await platform.ClusterAsync();
        var client = cluster.Client;
        var tenantId = PlatformFixture.NewTenant("erase");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, TestModels.Tiny, views: 64, steps: 4);
        var key = await tenant.CreateApiKeyAsync("default");
        var blobs = new BlobServiceClient(platform.Storage.ConnectionString);
        var containers = new TenantContainers(blobs);

        // A finished job, with a review of its first image and trail entries.
        var finished = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await finished.AddImagesAsync(tenantId, PlatformFixture.FashionImages([0, 1]));
        await finished.StartAsync(tenantId);
        Assert.Equal(JobState.Completed, (await PlatformFixture.WaitForJobAsync(finished, tenantId, TimeSpan.FromMinutes(2))).State);
        await new ReviewStore(containers).AppendAsync(tenantId, finished.GetPrimaryKeyString(), 0, Verdicts.FalseAlarm, "fine", "key1", DateTimeOffset.UtcNow);
        var trail = new AuditTrailStore(containers);
        for (var i = 0; i < 3; i++)
            await trail.AppendAsync(tenantId, new TrailEntry(Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow, "job.created", "key1", "POST", "/api/jobs", 201, ImmutableDictionary<string, string>.Empty));
        // A prompt artifact's blob as its store keeps it, and an open evaluation.
        var tenantContainer = await containers.GetAsync(tenantId);
        await tenantContainer.UploadBlobAsync(PromptArtifactStore.BlobName("mine", 1), BinaryData.FromBytes(new byte[64]));
        var evaluation = await EvaluationsForTests.CreateAsync(client, tenant, tenantId, images: 2, new EvaluationRequest("fashion", "default", "pgd", [1.0 / 255], Steps: 1));
        await client.GetGrain<IEvaluationIndexGrain>(tenantId).AddAsync(evaluation.GetPrimaryKeyString());
        // An open prompt training job with its labelled images.
        var training = client.GetGrain<IPromptTrainingJobGrain>(PromptTrainingDefinition.NewId());
        await training.CreateAsync(new PromptTrainingDefinition(tenantId, training.GetPrimaryKeyString(), await tenant.GetVocabularyAsync("fashion"),
            new PromptTrainingRequest("fashion", TestModels.Tiny, "trained", Epochs: 1), DateTimeOffset.UtcNow));
        await client.GetGrain<IPromptTrainingIndexGrain>(tenantId).AddAsync(training.GetPrimaryKeyString());
        await training.AddImagesAsync(tenantId, PromptTrainingTests.Images(1));
        // A running job: far more work than the erasure leaves it.
        var running = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await running.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(10, 60)));
        await running.StartAsync(tenantId);

        // Another tenant with a finished job: counted before and after.
        var otherId = PlatformFixture.NewTenant("keep");
        var other = await PlatformFixture.TenantWithFashionSetupAsync(client, otherId, TestModels.Tiny, steps: 1);
        var otherKey = await other.CreateApiKeyAsync("default");
        var otherJob = client.GetGrain<IJobGrain>((await other.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await otherJob.AddImagesAsync(otherId, PlatformFixture.FashionImages([5]));
        await otherJob.StartAsync(otherId);
        await PlatformFixture.WaitForJobAsync(otherJob, otherId, TimeSpan.FromMinutes(2));
        var otherBefore = await StorageListing.ObjectsNamingAsync(platform.Storage.ConnectionString, [otherId, otherJob.GetPrimaryKeyString()]);
        Assert.Contains(otherBefore, o => o.StartsWith("container tenant-" + otherId, StringComparison.Ordinal));

        var ids = new[] { tenantId, finished.GetPrimaryKeyString(), running.GetPrimaryKeyString(), evaluation.GetPrimaryKeyString(), training.GetPrimaryKeyString() };
        var before = await StorageListing.ObjectsNamingAsync(platform.Storage.ConnectionString, ids);
        output.WriteLine($"before the erasure: {before.Count} objects name the tenant or its jobs:\n{string.Join("\n", before.Where(o => !o.Contains("/jobs/", StringComparison.Ordinal)))}");
        Assert.Contains($"container tenant-{tenantId}", before);

        var erasure = client.GetGrain<ITenantErasureGrain>(tenantId);
        var started = await erasure.StartAsync();
        // Before it answered: no key validates, and nothing new is taken.
        Assert.NotEqual(ErasurePhase.None, started.Phase);
        Assert.Null(await tenant.ValidateApiKeyAsync(key.Secret));
        await Assert.ThrowsAsync<TaptConflictException>(() => tenant.CreateJobAsync(new JobRequest("fashion", "default")));
        await Assert.ThrowsAsync<TaptConflictException>(() => tenant.CreateApiKeyAsync("again"));

        var done = await WaitForErasureAsync(erasure, TimeSpan.FromMinutes(2));
        var summary = done.Summary!;
        output.WriteLine($"summary: blobs {Show(summary.Blobs)}; grain states {Show(summary.GrainStates)}; rows {Show(summary.TableRows)}; " +
            $"{(summary.Finished - summary.Started).TotalSeconds:F1} s from start to summary");
        Assert.Equal(tenantId, summary.TenantId);
        Assert.True(summary.Finished >= summary.Started);
        Assert.Equal(ids.Skip(1).Order(StringComparer.Ordinal), summary.Jobs.Order(StringComparer.Ordinal));
        Assert.Equal(2, summary.GrainStates["job"]);
        Assert.Equal(1, summary.GrainStates["evaluation"]);
        Assert.Equal(1, summary.GrainStates["evaluation-index"]);
        Assert.Equal(1, summary.GrainStates["prompt-training"]);
        Assert.Equal(1, summary.GrainStates["prompt-training-index"]);
        Assert.True(summary.GrainStates["tenant"] >= 2, "the tenant's keys and catalogue");
        Assert.Equal(2, summary.TableRows["job-index"]);
        Assert.True(summary.Blobs[ArtifactKinds.Inputs] >= 2 + 60, "the jobs' inputs");
        Assert.True(summary.Blobs[ArtifactKinds.Results] >= 2);
        Assert.Equal(1, summary.Blobs[TenantInventory.Reviews]);
        Assert.True(summary.Blobs[TenantInventory.Trail] >= 1);
        Assert.Equal(1, summary.Blobs[TenantInventory.PromptArtifacts]);
        Assert.Equal(1, summary.Blobs[TenantInventory.Vocabularies]);

        // Signed: it verifies, and any change to it does not.
        var signer = new ErasureSummarySigner(new ApiKeySigner(SigningKey));
        Assert.True(signer.Verify(summary));
        Assert.False(signer.Verify(summary with { Blobs = summary.Blobs.SetItem(ArtifactKinds.Inputs, 1) }));
        Assert.False(signer.Verify(summary with { TenantId = otherId }));
        // A signature altered in its last character, even only in the bits its encoding leaves unused, is refused.
        foreach (var c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".Where(c => c != summary.Signature![^1]))
            Assert.False(signer.Verify(summary with { Signature = summary.Signature![..^1] + c }));

        // Nothing of the tenant can be read any more, by anyone; nothing in storage names it but the operator's records.
        await Assert.ThrowsAsync<TaptNotFoundException>(() => finished.GetStatusAsync(tenantId));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => running.GetResultsAsync(tenantId, 0, 10));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => evaluation.GetStatusAsync(tenantId));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => training.GetStatusAsync(tenantId));
        Assert.Empty(await client.GetGrain<IPromptTrainingIndexGrain>(tenantId).ListAsync());
        Assert.Empty(await tenant.ListApiKeysAsync());
        Assert.Empty(await client.GetGrain<IEvaluationIndexGrain>(tenantId).ListAsync());
        await Assert.ThrowsAsync<TaptNotFoundException>(() => tenant.GetVocabularyAsync("fashion"));
        Assert.Equal(StorageListing.OperatorRecords(tenantId), await StorageListing.ObjectsNamingAsync(platform.Storage.ConnectionString, ids));
        // An erased tenant's container is never created again (a late write fails instead).
        await Assert.ThrowsAsync<TaptNotFoundException>(() => new TenantContainers(blobs, blobs.GetBlobContainerClient("tapt-operator")).GetAsync(tenantId));

        // Idempotent: asked again, the same erasure (its summary, unchanged).
        var again = await erasure.StartAsync();
        Assert.Equal(ErasurePhase.Done, again.Phase);
        Assert.Equal(summary.Signature, again.Summary!.Signature);

        // The other tenant: everything as it was.
        Assert.Equal(otherBefore, await StorageListing.ObjectsNamingAsync(platform.Storage.ConnectionString, [otherId, otherJob.GetPrimaryKeyString()]));
        Assert.NotNull(await other.ValidateApiKeyAsync(otherKey.Secret));
        Assert.Equal(JobState.Completed, (await otherJob.GetStatusAsync(otherId)).State);
        Assert.Equal(ErasurePhase.None, (await client.GetGrain<ITenantErasureGrain>(otherId).GetAsync()).Phase);

        // A tenant that never existed is not found.
        await Assert.ThrowsAsync<TaptNotFoundException>(() => client.GetGrain<ITenantErasureGrain>(PlatformFixture.NewTenant("never")).StartAsync());
    }

    [Fact]
    public async Task An_erasure_whose_silo_is_killed_mid_way_continues_on_another_silo_and_leaves_nothing()
    {
        await using var cluster = await TaptCluster.StartAsync(platform.Storage.ConnectionString);
        var client = cluster.Client;
        var tenantId = PlatformFixture.NewTenant("erasekill");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(client, tenantId, TestModels.Tiny, views: 64, steps: 4);
        await tenant.CreateApiKeyAsync("default");
        var job = client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId);
        await job.AddImagesAsync(tenantId, PlatformFixture.FashionImages(Enumerable.Range(100, 80)));
        await job.StartAsync(tenantId);
        var ids = new[] { tenantId, job.GetPrimaryKeyString() };

        // The tenant's blobs cannot be deleted for now: the erasure stops in its blob phase, retrying, mid-way.
        var erasure = client.GetGrain<ITenantErasureGrain>(tenantId);
        ErasureStatus stuck;
        using (cluster.Faults.Failing(r => r.Method == Azure.Core.RequestMethod.Delete && r.Uri.Path.Contains($"/tenant-{tenantId}/", StringComparison.Ordinal)))
        {
            await erasure.StartAsync();
            var deadline = DateTime.UtcNow.AddMinutes(2);
            do
            {
                await Task.Delay(200);
                stuck = await erasure.GetAsync();
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"the erasure did not reach its blob phase: {stuck}");
            } while (stuck.Phase != ErasurePhase.Blobs || stuck.LastError is null);
            Assert.Equal(1, stuck.GrainStates["job"]);
            Assert.Empty(stuck.Blobs);
            var silo = await client.GetGrain<IManagementGrain>(0).GetActivationAddress(erasure);
            var dying = cluster.Cluster.Silos.Single(s => s.SiloAddress.Equals(silo));
            output.WriteLine($"killing {dying.Name}, the erasure's silo, in phase {stuck.Phase} ({stuck.LastError})");
            await cluster.Cluster.KillSiloAsync(dying);
        }

        var done = await WaitForErasureAsync(erasure, TimeSpan.FromMinutes(4));
        var summary = done.Summary!;
        output.WriteLine($"summary: blobs {Show(summary.Blobs)}; grain states {Show(summary.GrainStates)}; rows {Show(summary.TableRows)}; " +
            $"{(summary.Finished - summary.Started).TotalSeconds:F1} s from start to summary");
        Assert.Equal(1, summary.GrainStates["job"]);   // not counted twice: its state was gone when the erasure resumed
        Assert.True(summary.Blobs[ArtifactKinds.Inputs] >= 80);
        Assert.Equal(1, summary.TableRows["job-index"]);
        Assert.True(new ErasureSummarySigner(new ApiKeySigner(SigningKey)).Verify(summary));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => job.GetStatusAsync(tenantId));
        Assert.Equal(StorageListing.OperatorRecords(tenantId), await StorageListing.ObjectsNamingAsync(platform.Storage.ConnectionString, ids));
    }

    [Theory]
    [InlineData("jobs/j-1/inputs/00003", ArtifactKinds.Inputs)]
    [InlineData("jobs/eval-1/adversarial/eps0/00003/apt.png", ArtifactKinds.Adversarial)]
    [InlineData("jobs/eval-1/originals/00000.png", TenantInventory.JobFiles)]
    [InlineData("staging/jobs/j-1/abc", TenantInventory.Staging)]
    [InlineData("staging/prompts/0123", TenantInventory.Staging)]
    [InlineData("trail/2026-12-06-000.jsonl", TenantInventory.Trail)]
    [InlineData("reviews/j-1/00000", TenantInventory.Reviews)]
    [InlineData("vocabularies/fashion/v000001.json", TenantInventory.Vocabularies)]
    [InlineData("prompts/mine/v000001.safetensors", TenantInventory.PromptArtifacts)]
    [InlineData("something-else", TenantInventory.Other)]
    public void The_inventory_tells_each_blob_kind_by_its_name(string name, string kind) => Assert.Equal(kind, TenantInventory.KindOf(name));

    /// <summary>Polls the erasure until it is done; calls fail while the cluster is still declaring a killed silo dead.</summary>
    private async Task<ErasureStatus> WaitForErasureAsync(ITenantErasureGrain erasure, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                var s = await erasure.GetAsync();
                if (s.Phase == ErasurePhase.Done) return s;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"the erasure is still in {s.Phase} after {timeout}: {s.LastError}");
            }
            catch (Exception e) when (e is not TimeoutException && DateTime.UtcNow < deadline)
            {
                output.WriteLine($"waiting for the cluster: {e.GetType().Name}: {e.Message}");
            }
            await Task.Delay(250);
        }
    }

    private static string Show(ImmutableSortedDictionary<string, long> counts) => string.Join(", ", counts.Select(c => $"{c.Value} {c.Key}"));
}
