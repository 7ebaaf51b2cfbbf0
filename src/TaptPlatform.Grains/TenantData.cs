using Orleans.Core;

namespace TaptPlatform.Grains;

/// <summary>What the grains holding a tenant's state share for its erasure (<see cref="Contracts.ITenantDataGrain"/>).</summary>
internal static class TenantData
{
    /// <summary>Deletes those of the records that exist in storage; returns how many did (a repeat: 0).</summary>
    public static async Task<int> ClearAsync(params IStorage[] records)
    {
        var cleared = 0;
        foreach (var record in records)
        {
            if (!record.RecordExists) continue;
            await record.ClearStateAsync();
            cleared++;
        }
        return cleared;
    }
}
