using Azure;
using Azure.Data.Tables;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// A tenant's job as its index row holds it: which vocabulary and prompt configuration versions it pins, and whether
/// it has ended (then it pins nothing).
/// </summary>
public sealed record TenantJobRow(string JobId, DateTimeOffset CreatedAt, string? Vocabulary, int VocabularyVersion,
    string? PromptConfiguration, int PromptConfigurationVersion, bool Ended)
{
    public static TenantJobRow Of(JobDefinition d) =>
        new(d.JobId, d.CreatedAt, d.Vocabulary.Name, d.Vocabulary.Version, d.Configuration.Name, d.Configuration.Version, false);

    public bool Pins(string? vocabulary, IReadOnlySet<int>? vocabularyVersions, string? configuration, IReadOnlySet<int>? configurationVersions) =>
        !Ended
        && (vocabularyVersions is null || (Vocabulary == vocabulary && vocabularyVersions.Contains(VocabularyVersion)))
        && (configurationVersions is null || (PromptConfiguration == configuration && configurationVersions.Contains(PromptConfigurationVersion)));
}

/// <summary>
/// Every tenant's jobs, one Azure Table row per job (partition: tenant id), so a tenant's job list has no size cap.
/// A job marks its row ended when it completes or is cancelled: the versions it pinned are free from then on.
/// </summary>
public sealed class TenantJobIndex(TableClient table)
{
    private Task? _created;

    public async Task AddAsync(string tenantId, TenantJobRow row)
    {
        await EnsureTableAsync();
        await table.UpsertEntityAsync(ToEntity(tenantId, row), TableUpdateMode.Replace);
    }

    /// <summary>Marks the job ended (idempotent; a row that does not exist is left alone).</summary>
    public async Task MarkEndedAsync(string tenantId, string jobId)
    {
        await EnsureTableAsync();
        try
        {
            await table.UpdateEntityAsync(new TableEntity(tenantId, jobId) { ["Ended"] = true }, ETag.All, TableUpdateMode.Merge);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // a job of an erased tenant, or recorded before the index existed and not yet moved into it
        }
    }

    /// <summary>The tenant's jobs, oldest first.</summary>
    public async Task<List<TenantJobRow>> ListAsync(string tenantId, bool unfinishedOnly = false)
    {
        await EnsureTableAsync();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {tenantId}");
        if (unfinishedOnly) filter += " and Ended eq false";
        var rows = new List<TenantJobRow>();
        await foreach (var e in table.QueryAsync<TableEntity>(filter)) rows.Add(FromEntity(e));
        return rows.OrderBy(r => r.CreatedAt).ThenBy(r => r.JobId, StringComparer.Ordinal).ToList();
    }

    /// <summary>Deletes every row of the tenant (its erasure); returns how many there were. A repeat deletes nothing.</summary>
    public async Task<int> DeleteAllAsync(string tenantId)
    {
        await EnsureTableAsync();
        var deleted = 0;
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {tenantId}");
        await foreach (var e in table.QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"]))
        {
            try
            {
                await table.DeleteEntityAsync(e.PartitionKey, e.RowKey, ETag.All);
                deleted++;
            }
            catch (RequestFailedException x) when (x.Status == 404)
            {
                // deleted meanwhile (an earlier attempt of the same erasure)
            }
        }
        return deleted;
    }

    private Task EnsureTableAsync()
    {
        var created = _created;
        if (created is null || created.IsFaulted || created.IsCanceled) _created = created = table.CreateIfNotExistsAsync();   // idempotent: a race costs one call
        return created;
    }

    private static TableEntity ToEntity(string tenantId, TenantJobRow r) => new(tenantId, r.JobId)
    {
        ["CreatedAt"] = r.CreatedAt,
        ["Vocabulary"] = r.Vocabulary,
        ["VocabularyVersion"] = r.VocabularyVersion,
        ["PromptConfiguration"] = r.PromptConfiguration,
        ["PromptConfigurationVersion"] = r.PromptConfigurationVersion,
        ["Ended"] = r.Ended,
    };

    private static TenantJobRow FromEntity(TableEntity e) => new(e.RowKey, e.GetDateTimeOffset("CreatedAt") ?? DateTimeOffset.MinValue,
        e.GetString("Vocabulary"), e.GetInt32("VocabularyVersion") ?? 0, e.GetString("PromptConfiguration"),
        e.GetInt32("PromptConfigurationVersion") ?? 0, e.GetBoolean("Ended") ?? false);
}
