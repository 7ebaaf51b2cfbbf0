using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Grains.Models;

/// <summary>
/// Makes a model available to this silo's catalog before work for it is queued: a model with a local folder, or already
/// loaded, needs nothing; a registered one is fetched (once, however many callers ask at the same time) and offered to
/// the catalog. Asynchronous, so it runs in grains, never on the tuning threads.
/// </summary>
public sealed class RegisteredModels(ModelCatalog catalog, ModelFileCache files, IGrainFactory grains, ILogger<RegisteredModels> log)
{
    private readonly ConcurrentDictionary<string, Lazy<Task>> _fetching = new(StringComparer.Ordinal);

    /// <summary>Completes when the catalog can load the model; <see cref="TuningFailedException"/> when it is unknown or cannot be fetched.</summary>
    public async Task EnsureAsync(string name, CancellationToken ct = default)
    {
        if (catalog.IsAvailable(name)) return;
        var fetch = _fetching.GetOrAdd(name, n => new Lazy<Task>(() => FetchAsync(n)));
        try
        {
            await fetch.Value.WaitAsync(ct);
        }
        finally
        {
            if (fetch.Value.IsCompleted) _fetching.TryRemove(new KeyValuePair<string, Lazy<Task>>(name, fetch));
        }
    }

    private async Task FetchAsync(string name)
    {
        await Task.Yield();
        var model = await grains.GetGrain<IModelRegistryGrain>(IModelRegistryGrain.Key).GetAsync(name)
            ?? throw new TuningFailedException($"unknown model '{name}' (neither in this silo's model folders nor registered)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fetched = await files.FetchAsync(model);
        catalog.Offer(name, fetched);
        log.LogInformation("Fetched model {Model} ({Checksum}, {Bytes} bytes) in {Seconds:F1} s", name, model.Checksum, model.Bytes, clock.Elapsed.TotalSeconds);
    }
}
