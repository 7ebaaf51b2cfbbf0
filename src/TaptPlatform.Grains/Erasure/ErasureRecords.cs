using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Erasure;

/// <summary>
/// The operator's records of erased tenants: <c>erasures/{tenant}.json</c> in the operator's container (never a tenant's),
/// each a signed <see cref="ErasureSummary"/>. They outlive the tenant's data: they are what is left of it.
/// </summary>
public sealed class ErasureRecords(BlobContainerClient container)
{
    public const string Prefix = "erasures/";
    private Task? _created;

    public static string BlobName(string tenantId) => Prefix + Identifiers.RequireTenantId(tenantId) + ".json";

    /// <summary>The mark of an erasure that started (empty; kept): no process creates the tenant's container again.</summary>
    public static string MarkName(string tenantId) => Prefix + Identifiers.RequireTenantId(tenantId) + ".started";

    /// <summary>Marks the tenant's erasure as started, before anything of it is deleted (idempotent).</summary>
    public async Task MarkStartedAsync(string tenantId)
    {
        await EnsureContainerAsync();
        await container.GetBlobClient(MarkName(tenantId)).UploadAsync(BinaryData.Empty, overwrite: true);
    }

    /// <summary>Whether the tenant's erasure started (or finished), in the operator's container <paramref name="records"/>.</summary>
    public static async Task<bool> StartedAsync(BlobContainerClient records, string tenantId)
    {
        try
        {
            return (await records.GetBlobClient(MarkName(tenantId)).ExistsAsync()).Value;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return false;   // no operator container yet: nobody was ever erased
        }
    }

    public string ContainerName => container.Name;

    /// <summary>Writes (or rewrites: a repeated final step writes the same summary again) the tenant's record.</summary>
    public async Task PutAsync(ErasureSummary summary)
    {
        await EnsureContainerAsync();
        var json = BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(summary, ErasureSummarySigner.Json));
        await container.GetBlobClient(BlobName(summary.TenantId)).UploadAsync(json,
            new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } });
    }

    /// <summary>The tenant's record, or null when it was never erased.</summary>
    public async Task<ErasureSummary?> GetAsync(string tenantId)
    {
        try
        {
            var content = await container.GetBlobClient(BlobName(tenantId)).DownloadContentAsync();
            return content.Value.Content.ToObjectFromJson<ErasureSummary>(ErasureSummarySigner.Json);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    private Task EnsureContainerAsync()
    {
        var created = _created;
        if (created is null || created.IsFaulted || created.IsCanceled) _created = created = container.CreateIfNotExistsAsync();
        return created;
    }
}
