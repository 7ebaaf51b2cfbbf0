using Azure.Data.Tables;
using Azure.Storage.Blobs;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// Lists the whole storage account (every container, every blob, every row of every table) for what names any of the
/// given strings (a tenant id, its job ids): what an operator would look through after an erasure.
/// </summary>
public static class StorageListing
{
    public static async Task<List<string>> ObjectsNamingAsync(string connectionString, IReadOnlyCollection<string> names)
    {
        bool Names(string s) => names.Any(n => s.Contains(n, StringComparison.OrdinalIgnoreCase));
        var found = new List<string>();
        var blobs = new BlobServiceClient(connectionString);
        await foreach (var container in blobs.GetBlobContainersAsync())
        {
            if (Names(container.Name)) found.Add($"container {container.Name}");
            await foreach (var blob in blobs.GetBlobContainerClient(container.Name).GetBlobsAsync())
                if (Names(blob.Name)) found.Add($"blob {container.Name}/{blob.Name}");
        }
        var tables = new TableServiceClient(connectionString);
        await foreach (var table in tables.QueryAsync())
            await foreach (var row in tables.GetTableClient(table.Name).QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey"]))
                if (Names(row.PartitionKey) || Names(row.RowKey)) found.Add($"row {table.Name}/{row.PartitionKey}/{row.RowKey}");
        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <summary>The two objects an erasure leaves in the operator's container: its start mark and its signed summary.</summary>
    public static string[] OperatorRecords(string tenantId, string operatorContainer = "tapt-operator") =>
        [$"blob {operatorContainer}/erasures/{tenantId}.json", $"blob {operatorContainer}/erasures/{tenantId}.started"];
}
