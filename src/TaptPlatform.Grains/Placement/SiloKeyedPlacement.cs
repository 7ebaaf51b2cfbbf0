using Microsoft.Extensions.DependencyInjection;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace TaptPlatform.Grains.Placement;

/// <summary>
/// Places a grain on the silo its key names (<see cref="SiloAddress.ToParsableString"/>), so a caller can reach one grain
/// per silo: the evaluation executors, one on every accelerator silo. A key naming a silo that is gone or has no
/// accelerator fails the call; the caller picks among the live accelerator silos again (<see cref="AcceleratorSilos"/>).
/// </summary>
[GenerateSerializer, Immutable]
public sealed class SiloKeyedPlacement : PlacementStrategy
{
    internal static readonly SiloKeyedPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloKeyedPlacementAttribute() : PlacementAttribute(SiloKeyedPlacement.Instance);

internal sealed class SiloKeyedPlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString() ?? "";
        SiloAddress? silo = null;
        try
        {
            silo = SiloAddress.FromParsableString(key);
        }
        catch (FormatException)
        {
            // Not a silo address: refused below.
        }
        if (silo is null || !context.GetCompatibleSilos(target).Contains(silo) ||
            !SiloRoles.HasAccelerator(metadata.GetSiloMetadata(silo).Metadata.GetValueOrDefault(SiloRoles.MetadataKey)))
            throw new OrleansException($"no live accelerator silo '{key}' for {target.GrainIdentity.Type}");
        return Task.FromResult(silo);
    }
}

/// <summary>The live accelerator silos, as every silo knows them (membership and silo metadata).</summary>
public sealed class AcceleratorSilos(IClusterMembershipService membership, ISiloMetadataCache metadata)
{
    /// <summary>The active silos that declare an accelerator, in a stable order.</summary>
    public IReadOnlyList<SiloAddress> Current() => [.. membership.CurrentSnapshot.Members.Values
        .Where(m => m.Status == SiloStatus.Active && SiloRoles.HasAccelerator(metadata.GetSiloMetadata(m.SiloAddress).Metadata.GetValueOrDefault(SiloRoles.MetadataKey)))
        .Select(m => m.SiloAddress)
        .OrderBy(s => s.ToParsableString(), StringComparer.Ordinal)];
}

public static class SiloKeyedPlacementExtensions
{
    /// <summary>Registers the silo-keyed placement and the accelerator silo list. Needs silo metadata (<c>UseSiloMetadata</c>).</summary>
    public static IServiceCollection AddSiloKeyedPlacement(this IServiceCollection services)
    {
        services.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        services.AddSingleton<AcceleratorSilos>();
        return services;
    }
}
