using Microsoft.Extensions.DependencyInjection;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace TaptPlatform.Grains.Placement;

/// <summary>
/// The silo roles, published as silo metadata under <see cref="MetadataKey"/>: <c>cpu</c> and <c>cuda</c> silos
/// run a tuning engine and may host model grains; <c>cpu-only</c> silos host tenant and job grains only.
/// </summary>
public static class SiloRoles
{
    public const string MetadataKey = "accelerator";
    public const string Cpu = "cpu";
    public const string Cuda = "cuda";
    public const string CpuOnly = "cpu-only";

    /// <summary>A silo may run TAPT when it declares an accelerator that is not <c>cpu-only</c>; silos without the key may not.</summary>
    public static bool HasAccelerator(string? accelerator) =>
        !string.IsNullOrWhiteSpace(accelerator) && !string.Equals(accelerator.Trim(), CpuOnly, StringComparison.OrdinalIgnoreCase);

    /// <summary>Checks a configured role value.</summary>
    public static string Parse(string? value)
    {
        var v = (value ?? "").Trim().ToLowerInvariant();
        return v is Cpu or Cuda or CpuOnly ? v : throw new ArgumentException($"unknown accelerator role '{value}' (use cpu, cuda or cpu-only)");
    }
}

/// <summary>Places the grain class only on silos that declare an accelerator (see <see cref="SiloRoles"/>).</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class AcceleratorPlacementFilterAttribute() : PlacementFilterAttribute(new AcceleratorPlacementFilterStrategy());

/// <summary>The filter strategy behind <see cref="AcceleratorPlacementFilterAttribute"/>; it has no parameters.</summary>
public sealed class AcceleratorPlacementFilterStrategy() : PlacementFilterStrategy(order: 0);

/// <summary>
/// Keeps the candidate silos whose cached metadata declares an accelerator. When none does, placement fails and
/// the caller retries later (a job waits for an accelerator silo to join).
/// </summary>
internal sealed class AcceleratorPlacementFilterDirector(ISiloMetadataCache metadata) : IPlacementFilterDirector
{
    public IEnumerable<SiloAddress> Filter(PlacementFilterStrategy filterStrategy, PlacementTarget target, IEnumerable<SiloAddress> silos) =>
        silos.Where(s => SiloRoles.HasAccelerator(metadata.GetSiloMetadata(s).Metadata.GetValueOrDefault(SiloRoles.MetadataKey)));
}

public static class AcceleratorPlacementExtensions
{
    /// <summary>Registers the accelerator placement filter. Needs silo metadata (<c>UseSiloMetadata</c>).</summary>
    public static IServiceCollection AddAcceleratorPlacementFilter(this IServiceCollection services) =>
        services.AddPlacementFilter<AcceleratorPlacementFilterStrategy, AcceleratorPlacementFilterDirector>(ServiceLifetime.Singleton);
}
