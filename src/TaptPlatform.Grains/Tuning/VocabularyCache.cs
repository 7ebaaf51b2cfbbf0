using System.Collections.Concurrent;
using TaptPlatform.Contracts;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Grains.Tuning;

/// <summary>
/// The vocabularies this silo's model grains resolved from references, bounded by the bytes of their texts. Keyed by the
/// whole reference (tenant, name, version, hash), so a tenant only ever gets a vocabulary it obtained itself; the device
/// caches behind it are keyed by the hash alone.
/// </summary>
public sealed class VocabularyCache(long maxBytes) : IDisposable
{
    private readonly BoundedCache<VocabularyReference, LabelVocabulary> _cache = new("tuning-engine.vocabularies", maxBytes, SizeOf);
    private readonly ConcurrentDictionary<VocabularyReference, Lazy<Task<LabelVocabulary>>> _loading = new();

    public ICacheStatistics Statistics => _cache;

    /// <summary>The vocabulary of a reference: cached, or obtained by <paramref name="fetch"/> once for all concurrent callers.</summary>
    public async Task<LabelVocabulary> GetAsync(VocabularyReference reference, Func<VocabularyReference, Task<VocabularyVersion>> fetch)
    {
        if (_cache.TryRent(reference, out var lease))
            using (lease) return lease.Value;
        var loading = _loading.GetOrAdd(reference, r => new Lazy<Task<LabelVocabulary>>(() => LoadAsync(r, fetch)));
        try
        {
            return await loading.Value;
        }
        finally
        {
            _loading.TryRemove(KeyValuePair.Create(reference, loading));
        }
    }

    private async Task<LabelVocabulary> LoadAsync(VocabularyReference reference, Func<VocabularyReference, Task<VocabularyVersion>> fetch)
    {
        VocabularyVersion version;
        try
        {
            version = await fetch(reference);
        }
        catch (TaptNotFoundException e)
        {
            throw new TuningFailedException($"vocabulary '{reference.Name}' v{reference.Version} is not available: {e.Message}");
        }
        var vocabulary = VocabularyReferences.Resolve(reference, version);
        using var lease = _cache.Rent(reference, _ => vocabulary);
        return lease.Value;
    }

    /// <summary>UTF-16 texts plus a little for the arrays and the reference.</summary>
    private static long SizeOf(LabelVocabulary v) =>
        256 + 2L * (v.Labels.Sum(l => (long)l.Length) + v.PromptTexts.Sum(t => (long)t.Length)) + 16L * v.Count;

    public void Dispose() => _cache.Dispose();
}
