using System.Runtime.InteropServices;

namespace TaptPlatform.Vision;

/// <summary>
/// libtorch's CPU tensors take their buffers from glibc's malloc. With glibc's defaults a buffer above the mmap threshold
/// (128 KiB, raised only as such buffers are freed) is mapped fresh and zeroed by the kernel on every use, and free memory
/// at the heap's top is handed back as soon as it exceeds 128 KiB. A TAPT step allocates and frees the same few sizes
/// hundreds of times, so the default model spent about 40 % of its time in page faults (248 k for one bench run of 33
/// images; 39 k with the thresholds fixed). Fixing both keeps those buffers in the heap for reuse; the cost is that the
/// process keeps up to <c>trimThresholdBytes</c> of freed heap instead of returning it.
/// </summary>
public static partial class NativeHeap
{
    private const int TrimThreshold = -1;   // M_TRIM_THRESHOLD
    private const int MmapThreshold = -3;   // M_MMAP_THRESHOLD

    /// <summary>Sets glibc's thresholds (once per process is enough); false where there is no glibc to tune.</summary>
    public static bool KeepTensorBuffers(int mmapThresholdBytes = 32 << 20, int trimThresholdBytes = 1 << 30)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            // 32 MiB is glibc's largest allowed mmap threshold on 64-bit; larger buffers are still mapped.
            return mallopt(MmapThreshold, mmapThresholdBytes) == 1 && mallopt(TrimThreshold, trimThresholdBytes) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int mallopt(int param, int value);
}
