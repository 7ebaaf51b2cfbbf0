using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// A job's accepted image bytes kept in memory until each image has a result, within the silo's budget
/// (<see cref="InputMemory"/>), so dispatching does not read back the blob just written. Past the budget, or after a
/// reactivation, images are read from their blobs.
/// </summary>
public sealed class JobInputs(InputMemory memory)
{
    private readonly Dictionary<int, byte[]> _bytes = [];

    public void TryKeep(int index, byte[] content)
    {
        if (memory.TryReserve(content.LongLength)) _bytes[index] = content;
    }

    public bool TryGetValue(int index, out byte[] content) => _bytes.TryGetValue(index, out content!);

    /// <summary>The image has its result: its bytes go back to the budget.</summary>
    public void Forget(int index)
    {
        if (_bytes.Remove(index, out var content)) memory.Release(content.LongLength);
    }

    /// <summary>The job ended or is deactivating: everything goes back to the budget.</summary>
    public void Clear()
    {
        foreach (var content in _bytes.Values) memory.Release(content.LongLength);
        _bytes.Clear();
    }
}
