using Orleans.Storage;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// A grain's persistent state written in batches: concurrent callers of <see cref="SaveAsync"/> share writes (each
/// returns after a write that includes its changes); changes marked with <see cref="MarkUnsaved"/> are written when
/// <see cref="UnsavedLimit"/> of them are pending or at the next <see cref="SaveIfPendingAsync"/>; a write refused
/// because another activation wrote meanwhile (a silo declared dead but still running) is merged with what storage
/// holds and retried. Used by interleaving grains, whose turns may call in while a write is in flight.
/// </summary>
public sealed class BatchedState<T>(IPersistentState<T> state, Action<T, T>? merge = null)
{
    private Task? _writing;
    private bool _dirty, _failed;
    private int _unsaved;

    public T State => state.State;

    /// <summary>Changes written at once by <see cref="MarkUnsaved"/> (1: every change is written).</summary>
    public int UnsavedLimit { get; init; } = 1;

    /// <summary>Whether something is not (yet) in storage: unsaved changes, a failed write, or a write in flight.</summary>
    public bool Pending => _dirty || _failed || _unsaved > 0 || _writing is { IsCompleted: false };

    /// <summary>Counts one change (a recorded result) and writes when <see cref="UnsavedLimit"/> are pending.</summary>
    public Task MarkUnsaved()
    {
        _unsaved++;
        return _unsaved >= Math.Max(1, UnsavedLimit) ? SaveAsync() : Task.CompletedTask;
    }

    /// <summary>Writes if changes are pending or the last write failed (a timer's catch-up).</summary>
    public Task SaveIfPendingAsync() => _failed || _unsaved > 0 ? SaveAsync() : Task.CompletedTask;

    /// <summary>Writes the state; returns after a write that includes every change made before the call.</summary>
    public async Task SaveAsync()
    {
        _dirty = true;
        while (_dirty)
        {
            if (_writing is { IsCompleted: false } inProgress)
            {
                try { await inProgress; } catch { /* the next write retries */ }
                continue;
            }
            _dirty = false;
            _writing = WriteOnceAsync();
            await _writing;
        }
    }

    private async Task WriteOnceAsync()
    {
        // The write serialises the state as it is now: every change counted so far is in it.
        var including = _unsaved;
        _unsaved = 0;
        try
        {
            try
            {
                await state.WriteStateAsync();
            }
            catch (InconsistentStateException) when (merge is not null)
            {
                var mine = state.State;
                await state.ReadStateAsync();
                merge(state.State, mine);
                await state.WriteStateAsync();
            }
            _failed = false;
        }
        catch
        {
            _unsaved += including;
            _failed = true;
            throw;
        }
    }
}
