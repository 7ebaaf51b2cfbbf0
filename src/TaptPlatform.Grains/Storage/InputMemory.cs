using Microsoft.Extensions.Options;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// The silo-wide budget of <see cref="JobOptions.InputMemoryBytes"/>: job grains reserve an accepted image's bytes
/// here before keeping them for dispatch and release them once the image has a result (or the job stops or
/// deactivates). A refused reservation only means that image is read from its blob when dispatched.
/// </summary>
public sealed class InputMemory(IOptions<JobOptions> options)
{
    private readonly long _capacity = Math.Max(0, options.Value.InputMemoryBytes);
    private long _used;

    /// <summary>Bytes reserved now.</summary>
    public long Used => Interlocked.Read(ref _used);

    public bool TryReserve(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        while (true)
        {
            var used = Interlocked.Read(ref _used);
            if (used + bytes > _capacity) return false;
            if (Interlocked.CompareExchange(ref _used, used + bytes, used) == used) return true;
        }
    }

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);
}
