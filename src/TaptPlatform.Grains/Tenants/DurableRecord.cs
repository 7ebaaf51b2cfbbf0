using Microsoft.Extensions.Logging;
using Orleans.Storage;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// One immutable record over <see cref="IPersistentState{T}"/>, written through: a change is stored before anyone can
/// see it, and a write that fails leaves memory as it was (or, when storage's version moved under it, re-read), so
/// no caller ever sees a value storage does not hold. Failures surface as <see cref="TaptStorageUnavailableException"/>.
/// </summary>
internal sealed class DurableRecord<T>(IPersistentState<T> state, string what, ILogger log) where T : class
{
    public T Value => state.State;

    public bool Exists => state.RecordExists;

    public async Task WriteAsync(T next)
    {
        var previous = state.State;
        state.State = next;
        try
        {
            await state.WriteStateAsync();
        }
        catch (Exception e) when (e is not TaptStorageUnavailableException)
        {
            state.State = previous;
            log.LogWarning(e, "Writing the {Record} record failed; memory keeps what storage held", what);
            if (e is InconsistentStateException) await RereadAsync();
            throw new TaptStorageUnavailableException($"storage did not accept the change to the {what}; nothing was changed, try again shortly");
        }
    }

    private async Task RereadAsync()
    {
        try
        {
            await state.ReadStateAsync();
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Re-reading the {Record} record failed", what);
        }
    }
}
