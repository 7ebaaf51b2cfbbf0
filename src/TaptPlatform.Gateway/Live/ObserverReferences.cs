namespace TaptPlatform.Gateway.Live;

/// <summary>What a stopping bridge does with its observer reference, for jobs and evaluations alike.</summary>
internal static class ObserverReferences
{
    /// <summary>
    /// Unsubscribes from every followed grain (best effort, at most 2 s each: a grain forgets an observer whose
    /// subscription expires anyway), then deletes the reference.
    /// </summary>
    public static async Task ReleaseAsync<TObserver>(IGrainFactory grains, TObserver reference,
        IEnumerable<Func<TObserver, Task>> unsubscribes, CancellationToken cancellationToken) where TObserver : IGrainObserver
    {
        foreach (var unsubscribe in unsubscribes)
        {
            try
            {
                await unsubscribe(reference).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // best effort, see above
            }
        }
        try
        {
            grains.DeleteObjectReference<TObserver>(reference);
        }
        catch (ArgumentException)
        {
            // The runtime already let go of it (the co-hosted silo is stopping).
        }
    }
}
