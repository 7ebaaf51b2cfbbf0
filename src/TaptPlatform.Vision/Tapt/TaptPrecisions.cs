using TorchSharp;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tapt;

/// <summary>Names of the precisions (settings and reports use them) and the choice "auto" makes for a device.</summary>
public static class TaptPrecisions
{
    public const string Auto = "auto";

    public static string Name(TaptPrecision precision) => precision switch
    {
        TaptPrecision.Fp32 => "fp32",
        TaptPrecision.Bf16Scoring => "bf16-scoring",
        TaptPrecision.Bf16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(precision)),
    };

    public static IReadOnlyList<string> Names { get; } = ["fp32", "bf16-scoring", "bf16"];

    public static bool TryParse(string? name, out TaptPrecision precision)
    {
        precision = name?.Trim().ToLowerInvariant() switch
        {
            "fp32" => TaptPrecision.Fp32,
            "bf16-scoring" => TaptPrecision.Bf16Scoring,
            "bf16" => TaptPrecision.Bf16,
            _ => (TaptPrecision)(-1),
        };
        return precision >= 0;
    }

    /// <summary>
    /// What "auto" runs on <paramref name="device"/>: bf16 where the hardware has native bf16 matrix products (CUDA
    /// devices of compute capability 8.0 or later are assumed; CPUs with AVX-512 BF16 or AMX-BF16), fp32 elsewhere, where
    /// libtorch emulates bf16 and it would be slower than fp32.
    /// </summary>
    public static TaptPrecision Fastest(Device device) => HasNativeBf16(device) ? TaptPrecision.Bf16 : TaptPrecision.Fp32;

    public static bool HasNativeBf16(Device device) =>
        device.type == DeviceType.CUDA || CpuFlags().Overlaps(["avx512_bf16", "amx_bf16"]);

    private static HashSet<string> CpuFlags()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            return line is null ? [] : [.. line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }
}
