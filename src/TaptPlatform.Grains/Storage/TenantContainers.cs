using System.Collections.Concurrent;
using Azure.Storage.Blobs;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// Each tenant's blob container (<c>tenant-{id}</c>), created on first use; every store of tenant data goes through
/// this, so a tenant's blobs all live under one container (and go with it).
/// </summary>
public sealed class TenantContainers(BlobServiceClient service)
{
    private readonly ConcurrentDictionary<string, Task<BlobContainerClient>> _created = new(StringComparer.Ordinal);

    public static string NameOf(string tenantId) => "tenant-" + Identifiers.RequireTenantId(tenantId);

    public Task<BlobContainerClient> GetAsync(string tenantId)
    {
        var name = NameOf(tenantId);
        var task = _created.GetOrAdd(name, async n =>
        {
            var c = service.GetBlobContainerClient(n);
            await c.CreateIfNotExistsAsync();
            return c;
        });
        if (task.IsFaulted) _created.TryRemove(name, out _);   // retry creation next time
        return task;
    }
}
