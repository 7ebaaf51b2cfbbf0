using System.Collections.Concurrent;
using Azure.Storage.Blobs;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Erasure;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// Each tenant's blob container (<c>tenant-{id}</c>), created on first use; every store of tenant data goes through
/// this, so a tenant's blobs all live under one container (and go with it). Given the operator's container
/// (<paramref name="erasures"/>), it never creates the container of a tenant whose erasure started: a late write of
/// an erased tenant fails instead of bringing its container back.
/// </summary>
public sealed class TenantContainers(BlobServiceClient service, BlobContainerClient? erasures = null)
{
    private readonly ConcurrentDictionary<string, Task<BlobContainerClient>> _created = new(StringComparer.Ordinal);

    public static string NameOf(string tenantId) => "tenant-" + Identifiers.RequireTenantId(tenantId);

    public Task<BlobContainerClient> GetAsync(string tenantId)
    {
        var name = NameOf(tenantId);
        var task = _created.GetOrAdd(name, async n =>
        {
            if (erasures is not null && await ErasureRecords.StartedAsync(erasures, tenantId))
                throw new TaptNotFoundException($"tenant '{tenantId}' was erased");
            var c = service.GetBlobContainerClient(n);
            await c.CreateIfNotExistsAsync();
            return c;
        });
        if (task.IsFaulted) _created.TryRemove(name, out _);   // retry creation next time
        return task;
    }

    /// <summary>The tenant's container as it is (never created): tenant erasure lists it and deletes it.</summary>
    public BlobContainerClient Existing(string tenantId) => service.GetBlobContainerClient(NameOf(tenantId));

    /// <summary>Deletes the tenant's container (true when it existed) and forgets that it was created here.</summary>
    public async Task<bool> DeleteAsync(string tenantId)
    {
        _created.TryRemove(NameOf(tenantId), out _);
        return (await Existing(tenantId).DeleteIfExistsAsync()).Value;
    }
}
