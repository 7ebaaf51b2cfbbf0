using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace TaptPlatform.Grains.Storage;

/// <summary>One blob of a tenant's container: its name, its kind (<see cref="TenantInventory.KindOf"/>) and when it was written.</summary>
public sealed record InventoryItem(string Name, string Kind, DateTimeOffset? Written);

/// <summary>A page of a tenant's blobs, and where the listing continues (null: this was the last page).</summary>
public sealed record InventoryPage(IReadOnlyList<InventoryItem> Items, string? ContinuationToken);

/// <summary>
/// What a tenant's container holds, by kind: every store writes under a prefix of its own, so a blob's name tells
/// what it is. Retention sweeps and tenant erasure walk the same listing, page by page, resuming from a saved
/// continuation token.
/// </summary>
public static class TenantInventory
{
    /// <summary>The kinds of blob a tenant has (job artifact kinds are <see cref="ArtifactKinds"/>).</summary>
    public const string JobFiles = "job-files", Staging = "staging", Trail = "trail", Reviews = "reviews",
        Vocabularies = "vocabularies", PromptArtifacts = "prompt-artifacts", Other = "other";

    public const int DefaultPageSize = 500;

    /// <summary>
    /// The kind of a blob by its name: <c>jobs/{job}/{kind}/…</c> an artifact kind (any other file of a job:
    /// <see cref="JobFiles"/>), <c>staging/…</c>, <c>trail/…</c>, <c>reviews/…</c>, <c>vocabularies/…</c>,
    /// <c>prompts/…</c>, else <see cref="Other"/>.
    /// </summary>
    public static string KindOf(string blobName)
    {
        var slash = blobName.IndexOf('/', StringComparison.Ordinal);
        var top = slash < 0 ? "" : blobName[..(slash + 1)];
        switch (top)
        {
            case ImageStaging.Prefix: return Staging;
            case AuditTrailStore.Prefix: return Trail;
            case ReviewStore.Prefix: return Reviews;
            case "vocabularies/": return Vocabularies;
            case "prompts/": return PromptArtifacts;
            case "jobs/":
                var parts = blobName.Split('/', 4);
                return parts.Length >= 4 && ArtifactKinds.IsKnown(parts[2]) ? parts[2] : JobFiles;
            default: return Other;
        }
    }

    /// <summary>The job or evaluation id of a blob under <c>jobs/{id}/</c>, else null.</summary>
    public static string? JobOf(string blobName)
    {
        var parts = blobName.Split('/', 3);
        return parts.Length == 3 && parts[0] == "jobs" && parts[1].Length > 0 ? parts[1] : null;
    }

    /// <summary>The container's blobs a page at a time, from <paramref name="continuation"/> (null: the start).</summary>
    public static async IAsyncEnumerable<InventoryPage> PagesAsync(BlobContainerClient container, string? continuation, int pageSize = DefaultPageSize)
    {
        await foreach (Page<BlobItem> page in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).AsPages(continuation, pageSize))
        {
            var items = page.Values.Select(b => new InventoryItem(b.Name, KindOf(b.Name), b.Properties.CreatedOn ?? b.Properties.LastModified)).ToList();
            yield return new InventoryPage(items, page.ContinuationToken);
        }
    }
}
