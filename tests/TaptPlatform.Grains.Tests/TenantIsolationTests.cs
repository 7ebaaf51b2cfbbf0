using System.Text;
using Azure.Data.Tables;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class TenantIsolationTests(PlatformFixture platform)
{
    [Fact]
    public async Task Another_tenant_gets_not_found_from_every_job_call_exactly_as_for_a_missing_job()
    {
        var cluster = await platform.ClusterAsync();
        var (alice, bob) = (PlatformFixture.NewTenant("alice"), PlatformFixture.NewTenant("bob"));
        var aliceTenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, alice, TestModels.Tiny, minimumConfidence: 1.0);
        await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, bob, TestModels.Tiny);
        var jobId = (await aliceTenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId;
        var job = cluster.Client.GetGrain<IJobGrain>(jobId);
        await job.AddImagesAsync(alice, PlatformFixture.FashionImages([0, 1]));
        await job.StartAsync(alice);
        var done = await PlatformFixture.WaitForJobAsync(job, alice, TimeSpan.FromMinutes(1));
        Assert.Equal(2, done.Counts.Flagged);   // a confidence threshold of 1 flags everything: audit records exist

        var observer = cluster.Client.CreateObjectReference<IJobObserver>(new JobTests.RecordingObserver());
        var calls = new (string Name, Func<string, Task> Call)[]
        {
            ("status", t => job.GetStatusAsync(t)),
            ("add images", t => job.AddImagesAsync(t, PlatformFixture.FashionImages([2]))),
            ("start", t => job.StartAsync(t)),
            ("cancel", t => job.CancelAsync(t)),
            ("results", t => job.GetResultsAsync(t, 0, 10)),
            ("result detail", t => job.GetResultDetailAsync(t, 0)),
            ("input image", t => job.GetInputImageAsync(t, 0)),
            ("audit record", t => job.GetAuditRecordAsync(t, 0)),
            ("artifacts", t => job.ListArtifactsAsync(t)),
            ("subscribe", t => job.SubscribeAsync(t, observer)),
            ("unsubscribe", t => job.UnsubscribeAsync(t, observer)),
        };
        var missing = cluster.Client.GetGrain<IJobGrain>(Identifiers.NewJobId());
        var missingMessage = (await Assert.ThrowsAsync<TaptNotFoundException>(() => missing.GetStatusAsync(bob))).Message;
        foreach (var (name, call) in calls)
        {
            foreach (var intruder in new[] { bob, "", alice.ToUpperInvariant() })
            {
                var e = await Assert.ThrowsAsync<TaptNotFoundException>(() => call(intruder));
                Assert.True(e.Message == missingMessage.Replace(missing.GetPrimaryKeyString(), jobId, StringComparison.Ordinal), $"{name}: {e.Message}");
            }
        }

        // Nothing the intruders tried changed the job, and its owner still reads everything.
        var after = await job.GetStatusAsync(alice);
        Assert.Equal(JobState.Completed, after.State);
        Assert.Equal(2, after.Counts.Total);
        Assert.Contains("tapt-audit", await job.GetAuditRecordAsync(alice, 0));
        Assert.DoesNotContain(jobId, await cluster.Client.GetGrain<ITenantGrain>(bob).ListJobsAsync());
        Assert.Contains(jobId, await aliceTenant.ListJobsAsync());
    }

    [Fact]
    public async Task Vocabularies_and_prompt_configurations_belong_to_one_tenant()
    {
        var cluster = await platform.ClusterAsync();
        var (alice, bob) = (PlatformFixture.NewTenant("alice"), PlatformFixture.NewTenant("bob"));
        var aliceTenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, alice, TestModels.Tiny);
        var bobTenant = cluster.Client.GetGrain<ITenantGrain>(bob);

        await Assert.ThrowsAsync<TaptNotFoundException>(() => bobTenant.GetVocabularyAsync("fashion"));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => bobTenant.GetVocabularyAsync("fashion", 1));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => bobTenant.GetPromptConfigurationAsync("default"));
        await Assert.ThrowsAsync<TaptNotFoundException>(() => bobTenant.CreateJobAsync(new JobRequest("fashion", "default")));
        Assert.Empty(await bobTenant.ListVocabulariesAsync());

        // Bob's own vocabulary of the same name is his alone.
        var bobs = await bobTenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("fashion", ["cat", "dog"]));
        Assert.Equal(1, bobs.Version);
        Assert.Equal(bob, bobs.TenantId);
        var alices = await aliceTenant.GetVocabularyAsync("fashion");
        Assert.Equal(1, alices.Version);
        Assert.Equal(TestModels.FashionLabels, alices.Labels.Select(l => l.Label));
    }

    [Fact]
    public async Task Api_keys_are_stored_only_as_hashes_and_validate_only_for_their_own_tenant()
    {
        var cluster = await platform.ClusterAsync();
        var (alice, bob) = (PlatformFixture.NewTenant("alice"), PlatformFixture.NewTenant("bob"));
        var aliceTenant = cluster.Client.GetGrain<ITenantGrain>(alice);
        var bobTenant = cluster.Client.GetGrain<ITenantGrain>(bob);
        var key = await aliceTenant.CreateApiKeyAsync("ci");
        await bobTenant.CreateApiKeyAsync("other");

        Assert.Equal((alice, key.KeyId), ApiKeySecrets.Parse(key.Secret));
        Assert.Equal(key.KeyId, (await aliceTenant.ValidateApiKeyAsync(key.Secret))?.KeyId);
        Assert.Null(await bobTenant.ValidateApiKeyAsync(key.Secret));
        Assert.Null(await bobTenant.ValidateApiKeyAsync(key.Secret.Replace($"tapt.{alice}.", $"tapt.{bob}.", StringComparison.Ordinal)));
        Assert.Null(await aliceTenant.ValidateApiKeyAsync(key.Secret[..^1] + (key.Secret[^1] == 'A' ? 'B' : 'A')));

        // The stored tenant state holds the hash, never the secret.
        var table = new TableClient(platform.Storage.ConnectionString, cluster.Storage.TenantTable);
        var stored = new List<byte[]>();
        await foreach (var e in table.QueryAsync<TableEntity>())
            if (e.RowKey.Contains(alice, StringComparison.Ordinal) || e.PartitionKey.Contains(alice, StringComparison.Ordinal))
                stored.AddRange(((IDictionary<string, object>)e).Values.Select(v => v switch { byte[] b => b, string s => Encoding.UTF8.GetBytes(s), _ => [] }));
        Assert.NotEmpty(stored);
        var secretPart = Encoding.UTF8.GetBytes(key.Secret.Split('.')[3]);
        var hash = Encoding.UTF8.GetBytes(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key.Secret))));
        Assert.DoesNotContain(stored, b => b.AsSpan().IndexOf(secretPart) >= 0);
        Assert.Contains(stored, b => b.AsSpan().IndexOf(hash) >= 0);

        await aliceTenant.RevokeApiKeyAsync(key.KeyId);
        Assert.Null(await aliceTenant.ValidateApiKeyAsync(key.Secret));
    }

    [Theory]
    [InlineData("../other")]
    [InlineData("Alice")]
    [InlineData("a/b")]
    [InlineData("tenant-x/../y")]
    [InlineData("")]
    [InlineData("ab")]
    public async Task Malformed_tenant_ids_reach_neither_a_tenant_grain_nor_a_container(string tenantId)
    {
        var cluster = await platform.ClusterAsync();
        Assert.Throws<ArgumentException>(() => BlobArtifactStore.ContainerName(tenantId));
        await Assert.ThrowsAnyAsync<Exception>(() => cluster.Client.GetGrain<ITenantGrain>(tenantId).ListJobsAsync());
    }

    [Theory]
    [InlineData("../job-12345678")]
    [InlineData("job-1234/../../x")]
    [InlineData("JOB-12345678")]
    [InlineData("short")]
    public void Artifact_names_are_built_only_from_valid_job_ids(string jobId)
    {
        Assert.Throws<ArgumentException>(() => BlobArtifactStore.BlobName(jobId, ArtifactKinds.Inputs, 0));
        Assert.Throws<ArgumentException>(() => BlobArtifactStore.JobPrefix(jobId));
    }
}
