using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// Moves a tenant's single-entity state (what earlier versions wrote) into its records, once, on activation: the
/// vocabulary contents to blobs, the jobs to index rows (each job asked once what it pins), the keys, and the
/// catalogue last, as the mark that the move is complete; then the old entity is cleared. A move cut short is redone
/// from the old entity the next time (every step overwrites); a tenant whose catalogue exists only clears it.
/// </summary>
internal sealed class TenantMigration(string tenantId, IGrainFactory grains, VocabularyStore vocabularies, TenantJobIndex jobs, ILogger log)
{
    public async Task MoveAsync(IPersistentState<TenantState> legacy, DurableRecord<TenantKeys> keys, DurableRecord<TenantCatalog> catalog)
    {
        var old = legacy.State;
        if (!catalog.Exists && !old.IsEmpty)
        {
            var moved = await MoveVocabulariesAsync(old);
            foreach (var jobId in old.Jobs) await MoveJobAsync(jobId);
            await keys.WriteAsync(new TenantKeys(old.ApiKeys
                .Select(k => new TenantApiKey(k.KeyId, k.Name, k.Sha256, k.CreatedAt, k.RevokedAt)).ToImmutableList()));
            await catalog.WriteAsync(moved with { PromptConfigurations = PromptConfigurationsOf(old) });
            log.LogInformation("Tenant {Tenant}: moved {Vocabularies} vocabularies, {Configurations} prompt configurations, {Keys} keys and {Jobs} jobs into separate records",
                tenantId, old.Vocabularies.Count, old.PromptConfigurations.Count, old.ApiKeys.Count, old.Jobs.Count);
        }
        await legacy.ClearStateAsync();
    }

    private async Task<TenantCatalog> MoveVocabulariesAsync(TenantState old)
    {
        var catalog = new TenantCatalog();
        foreach (var (key, version) in old.LastVersions) catalog = catalog.RememberVersion(key, version);
        foreach (var (name, versions) in old.Vocabularies)
        {
            var entries = ImmutableList<VocabularyEntry>.Empty;
            foreach (var v in versions)
            {
                var content = StoredVocabulary.Of(v);
                await vocabularies.PutAsync(v, content);
                entries = entries.Add(new VocabularyEntry(v.Version, v.Labels.Length, content.Json.ToMemory().Length, content.Sha256, v.CreatedAt));
            }
            if (entries.Count > 0) catalog = catalog with { Vocabularies = catalog.Vocabularies.SetItem(name, entries) };
        }
        return catalog;
    }

    private async Task MoveJobAsync(string jobId)
    {
        try
        {
            var s = await grains.GetGrain<IJobGrain>(jobId).GetStatusAsync(tenantId);
            await jobs.AddAsync(tenantId, new TenantJobRow(jobId, s.CreatedAt, s.Vocabulary, s.VocabularyVersion, s.PromptConfiguration,
                s.PromptConfigurationVersion, s.State is JobState.Completed or JobState.Cancelled));
        }
        catch (TaptNotFoundException)
        {
            // listed before its grain was created, and never created: nothing to move
        }
    }

    /// <summary>The versions the old state kept (before it kept versions, only the latest).</summary>
    private static ImmutableDictionary<string, ImmutableList<PromptConfiguration>> PromptConfigurationsOf(TenantState old) =>
        old.PromptConfigurations.ToImmutableDictionary(
            kv => kv.Key,
            kv => (old.PromptConfigurationVersions.TryGetValue(kv.Key, out var versions) && versions.Count > 0 ? versions : [kv.Value]).ToImmutableList(),
            StringComparer.Ordinal);
}
