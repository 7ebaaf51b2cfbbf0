using System.Collections.Immutable;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Core.Internal;
using Orleans.Serialization;
using Orleans.Storage;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tenants;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>
/// A tenant's records under a hostile tenant and failing storage: what a caller sees is what storage holds, a full
/// tenant is refused with a storage-limit error, and a revocation survives everything else and a reload.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class TenantRecordTests(PlatformFixture platform)
{
    [Fact]
    public async Task Large_vocabularies_cannot_make_a_key_unrevocable_and_a_revocation_survives_a_reload()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("big");
        var tenant = cluster.Client.GetGrain<ITenantGrain>(tenantId);
        var key = await tenant.CreateApiKeyAsync("probe");
        // What broke the single-entity state: 1000 labels with 500-character prompt texts, twice.
        foreach (var round in new[] { "a", "b" })
            await tenant.PutVocabularyAsync(LargeVocabulary("huge", round));
        // Until the tenant's vocabulary bytes are spent: then a clear storage-limit error, and nothing changed.
        var stored = 2;
        var full = await Assert.ThrowsAsync<TaptStorageQuotaException>(async () =>
        {
            for (var i = 0; i < 100; i++, stored++) await tenant.PutVocabularyAsync(LargeVocabulary("huge", "r" + i));
        });
        Assert.Contains("bytes", full.Message);
        Assert.Equal(stored, (await tenant.ListVocabularyVersionsAsync("huge")).Length);

        await tenant.RevokeApiKeyAsync(key.KeyId);
        Assert.Null(await tenant.ValidateApiKeyAsync(key.Secret));
        async Task<bool> Active() =>
            (await cluster.Client.GetGrain<IManagementGrain>(0).GetActiveGrains(GrainType.Create("tenant"))).Any(g => g.Key.ToString() == tenantId);
        Assert.True(await Active());
        await tenant.AsReference<IGrainManagementExtension>().DeactivateOnIdle();
        await WaitUntilAsync(async () => !await Active());
        Assert.Null(await tenant.ValidateApiKeyAsync(key.Secret));
        Assert.Equal(stored, (await tenant.ListVocabularyVersionsAsync("huge")).Length);
        Assert.Equal(1000, (await tenant.GetVocabularyAsync("huge", 1)).Labels.Length);
    }

    [Fact]
    public async Task A_write_storage_refuses_changes_nothing_and_a_failed_revocation_leaves_the_key_visibly_working()
    {
        var cluster = await platform.ClusterAsync();
        var tenant = cluster.Client.GetGrain<ITenantGrain>(PlatformFixture.NewTenant("faulty"));
        var key = await tenant.CreateApiKeyAsync("probe");
        await tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("v", ["a", "b"]));
        using (cluster.Faults.Failing(StorageFaults.WritesTo(cluster.Storage.TenantTable)))
        {
            await Assert.ThrowsAsync<TaptStorageUnavailableException>(() => tenant.RevokeApiKeyAsync(key.KeyId));
            Assert.NotNull(await tenant.ValidateApiKeyAsync(key.Secret));
            Assert.Null((await tenant.ListApiKeysAsync()).Single().RevokedAt);
            await Assert.ThrowsAsync<TaptStorageUnavailableException>(() => tenant.CreateApiKeyAsync("second"));
            Assert.Single(await tenant.ListApiKeysAsync());
            await Assert.ThrowsAsync<TaptStorageUnavailableException>(() => tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("v", ["a", "b", "c"])));
            Assert.Equal(new[] { 1 }, (await tenant.ListVocabularyVersionsAsync("v")).ToArray());
            await Assert.ThrowsAsync<TaptStorageUnavailableException>(() => tenant.PutPromptConfigurationAsync(new PromptConfiguration("p", TestModels.Tiny)));
            await Assert.ThrowsAsync<TaptNotFoundException>(() => tenant.GetPromptConfigurationAsync("p"));
        }
        Assert.True(cluster.Faults.Failed >= 4);
        // Storage back: the same calls succeed, version numbers continue where storage says.
        Assert.Equal(2, (await tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("v", ["a", "b", "c"]))).Version);
        await tenant.RevokeApiKeyAsync(key.KeyId);
        Assert.Null(await tenant.ValidateApiKeyAsync(key.Secret));
    }

    [Fact]
    public async Task A_job_that_ends_unpins_its_versions_itself()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("pins");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Tiny);
        var jobId = (await tenant.CreateJobAsync(new JobRequest("fashion", "default"))).JobId;
        var index = cluster.Silo(0).ServiceProvider.GetRequiredService<TenantJobIndex>();
        Assert.False((await index.ListAsync(tenantId)).Single().Ended);
        await Assert.ThrowsAsync<TaptConflictException>(() => tenant.DeleteVocabularyAsync("fashion"));
        await Assert.ThrowsAsync<TaptConflictException>(() => tenant.DeletePromptConfigurationAsync("default"));

        await cluster.Client.GetGrain<IJobGrain>(jobId).CancelAsync(tenantId);
        Assert.True((await index.ListAsync(tenantId)).Single().Ended);   // marked by the job's end, not found by asking it
        Assert.Empty(await index.ListAsync(tenantId, unfinishedOnly: true));
        await tenant.DeleteVocabularyAsync("fashion");
        await tenant.DeletePromptConfigurationAsync("default");
        Assert.Equal(new[] { jobId }, (await tenant.ListJobsAsync()).ToArray());
    }

    [Fact]
    public async Task State_written_as_one_entity_by_earlier_versions_moves_into_the_records()
    {
        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("legacy");
        var old = await LegacyStateAsync(cluster, tenantId);
        var grainId = GrainId.Create("tenant", tenantId);
        var storage = cluster.Silo(0).ServiceProvider.GetRequiredKeyedService<IGrainStorage>(GrainStorageNames.Tenants);
        await storage.WriteStateAsync("tenant", grainId, new GrainState<TenantState>(old.State));

        var tenant = cluster.Client.GetGrain<ITenantGrain>(tenantId);
        Assert.Equal(2, (await tenant.GetVocabularyAsync("fashion")).Version);
        Assert.Equal(new[] { 2 }, (await tenant.ListVocabularyVersionsAsync("fashion")).ToArray());
        Assert.Equal(new[] { 1, 2 }, (await tenant.ListPromptConfigurationVersionsAsync("default")).ToArray());
        Assert.Equal(old.LiveKey.KeyId, (await tenant.ValidateApiKeyAsync(old.LiveKey.Secret))?.KeyId);
        Assert.Null(await tenant.ValidateApiKeyAsync(old.RevokedKey.Secret));
        Assert.Equal(new[] { old.JobId }, (await tenant.ListJobsAsync()).ToArray());
        await Assert.ThrowsAsync<TaptConflictException>(() => tenant.DeleteVocabularyAsync("fashion"));   // the open job still pins it
        Assert.Equal(4, (await tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("fashion", ["x", "y"]))).Version);   // 3 was given and deleted

        var left = new GrainState<TenantState>(new TenantState());
        await storage.ReadStateAsync("tenant", grainId, left);
        Assert.False(left.RecordExists);
    }

    [Fact]
    public void The_largest_records_the_limits_allow_fit_one_table_entity()
    {
        var limits = new TenantLimits { MaxVocabularies = 1000, MaxVocabularyVersions = 2000, MaxPromptConfigurationVersions = 1000, MaxStoredApiKeys = 2000 };
        limits.Validate();
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var name = new string('n', 64);
        var sha = new string('f', 64);
        var perVocabulary = limits.MaxVocabularyVersions / limits.MaxVocabularies;
        var catalog = new TenantCatalog();
        for (var v = 0; v < limits.MaxVocabularies; v++)
        {
            var n = name[..60] + v.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);
            catalog = catalog with
            {
                Vocabularies = catalog.Vocabularies.SetItem(n, Enumerable.Range(1, perVocabulary)
                    .Select(i => new VocabularyEntry(int.MaxValue - i, 1000, long.MaxValue, sha, DateTimeOffset.MaxValue)).ToImmutableList()),
                PromptConfigurations = catalog.PromptConfigurations.SetItem(n, [new PromptConfiguration(n, name, name, "VLJ", 1024, 100, 10,
                    new FlaggingPolicy(0.123456789, true, true), int.MaxValue, int.MaxValue, sha)]),
                LastVersions = catalog.LastVersions.SetItem("vocabulary:" + n, int.MaxValue).SetItem("prompt:" + n, int.MaxValue),
            };
        }
        var keys = new TenantKeys(Enumerable.Range(0, limits.MaxStoredApiKeys)
            .Select(i => new TenantApiKey("0123456789ab", name, sha, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue)).ToImmutableList());
        var catalogBytes = serializer.SerializeToArray(catalog).Length;
        var keyBytes = serializer.SerializeToArray(keys).Length;
        Assert.True(catalogBytes < TenantLimits.RecordCapBytes * 0.9, $"catalogue {catalogBytes} bytes");
        Assert.True(keyBytes < TenantLimits.RecordCapBytes * 0.9, $"keys {keyBytes} bytes");
    }

    [Fact]
    public void The_largest_prompt_artifact_catalogue_the_limits_allow_fits_one_table_entity()
    {
        var limits = new TenantLimits { MaxPromptArtifactVersions = 1000 };
        limits.Validate();
        var serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        var name = new string('n', 64);
        var sha = new string('f', 64);
        var catalog = new TaptPlatform.Grains.Artifacts.TenantPromptArtifacts();
        for (var v = 0; v < limits.MaxPromptArtifactVersions; v++)
        {
            var n = name[..60] + v.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);
            catalog = catalog with
            {
                Artifacts = catalog.Artifacts.SetItem(n, [new PromptArtifactInfo(n, int.MaxValue, PromptArtifactInfo.TenantOwner, name, "sha256:" + sha, "VLJ",
                    int.MaxValue, long.MaxValue, sha, DateTimeOffset.MaxValue, int.MaxValue, true, true)]),
                LastVersions = catalog.LastVersions.SetItem(n, int.MaxValue),
            };
        }
        var bytes = serializer.SerializeToArray(catalog).Length;
        Assert.True(bytes < TenantLimits.RecordCapBytes * 0.9, $"prompt artifact catalogue {bytes} bytes");
    }

    private static VocabularyDefinition LargeVocabulary(string name, string round) => new(name,
        Enumerable.Range(0, VocabularyDefinition.MaxLabels).Select(i => new LabelEntry($"label {round} {i}", new string('p', 500))).ToImmutableArray());

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; !await condition(); i++)
        {
            if (i == 100) throw new TimeoutException("the condition did not hold within 10 s");
            await Task.Delay(100);
        }
    }

    /// <summary>A tenant state as earlier versions stored it: two vocabulary versions (one deleted), two prompt versions, keys, an open job.</summary>
    private static async Task<(TenantState State, ApiKeyIssued LiveKey, ApiKeyIssued RevokedKey, string JobId)> LegacyStateAsync(TaptCluster cluster, string tenantId)
    {
        // Real secrets and a real job, made by a helper tenant; their hashes and ids are then put in the legacy entity.
        var maker = cluster.Client.GetGrain<ITenantGrain>(tenantId + "-m");
        var live = await maker.CreateApiKeyAsync("live");
        var revoked = await maker.CreateApiKeyAsync("revoked");
        var now = DateTimeOffset.UtcNow;
        var vocabulary = new VocabularyVersion(tenantId, "fashion", 2, TestModels.FashionLabels.Select(l => new LabelEntry(l)).ToImmutableArray(), VocabularyDefinition.DefaultTemplate, now);
        var configurations = new List<PromptConfiguration> { new("default", TestModels.Tiny, Version: 1), new("default", TestModels.Tiny, Steps: 1, Version: 2) };
        var jobId = Identifiers.NewJobId();
        await cluster.Client.GetGrain<IJobGrain>(jobId).CreateAsync(new JobDefinition(tenantId, jobId, null, vocabulary, configurations[1], 0, now));
        var state = new TenantState
        {
            Vocabularies = { ["fashion"] = [vocabulary] },
            PromptConfigurations = { ["default"] = configurations[1] },
            PromptConfigurationVersions = { ["default"] = configurations },
            LastVersions = { ["vocabulary:fashion"] = 3, ["prompt:default"] = 2 },
            Jobs = [jobId],
            ApiKeys =
            [
                new StoredApiKey { KeyId = live.KeyId, Name = "live", Sha256 = Sha256(live.Secret.Replace(tenantId + "-m", tenantId, StringComparison.Ordinal)), CreatedAt = now },
                new StoredApiKey { KeyId = revoked.KeyId, Name = "revoked", Sha256 = Sha256(revoked.Secret.Replace(tenantId + "-m", tenantId, StringComparison.Ordinal)), CreatedAt = now, RevokedAt = now },
            ],
        };
        return (state, live with { Secret = live.Secret.Replace(tenantId + "-m", tenantId, StringComparison.Ordinal) },
            revoked with { Secret = revoked.Secret.Replace(tenantId + "-m", tenantId, StringComparison.Ordinal) }, jobId);
    }

    private static string Sha256(string secret) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret)));
}
