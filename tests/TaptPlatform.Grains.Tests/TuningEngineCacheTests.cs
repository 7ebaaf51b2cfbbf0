using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class TuningEngineCacheTests
{
    private const string Tenant = "engine-cache-tests";

    private static readonly TuningEngineOptions Small = new()
    {
        Threads = 2,
        QueueCapacity = 16,
        MaxBatchSize = 4,
        TextCacheBytes = 16 << 10,
        DefenseCacheEntries = 3,
        VocabularyCacheBytes = 4 << 10,
    };

    private static VocabularyVersion Vocabulary(int v) => new(Tenant, "fashion", v + 1,
        [.. TestModels.FashionLabels.Select((l, i) => new LabelEntry(l, i == v % 10 ? $"a picture of a {l}, number {v}." : null))],
        $"photo {v} of a {{0}}.", DateTimeOffset.UnixEpoch);

    private static TuningSettings Settings(int s) => new(null, "VLI", 8 + 4 * s, 1, null);

    [Fact]
    public async Task Fifty_vocabularies_under_five_settings_stay_within_the_cache_bounds_and_tune_as_without_caches()
    {
        using var metrics = new ObservabilityTests.MetricRecorder(m => m.Name == CacheMetrics.MeterName);
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions { Directories = { [TestModels.Tiny] = TestModels.TinyDirectory } }),
            NullLogger<ModelCatalog>.Instance, Options.Create(Small));
        using var engine = new TuningEngine(Options.Create(Small), catalog, NullLogger<TuningEngine>.Instance);
        using var model = catalog.Rent(TestModels.Tiny, TorchSharp.torch.CPU);
        var text = model.Value.Clip.TextCache;
        var caches = new[] { text, engine.DefenseCache, engine.Vocabularies.Statistics };
        var fetches = 0;
        Task<VocabularyVersion> Fetch(VocabularyReference r)
        {
            Interlocked.Increment(ref fetches);
            return Task.FromResult(Vocabulary(r.Version - 1));
        }
        async Task<TuningOutcome> Tune(int v, int s)
        {
            var reference = VocabularyReferences.Of(Vocabulary(v));
            var vocabulary = await engine.Vocabularies.GetAsync(reference, Fetch);
            var request = new TuningRequest(Tenant, "job-cache-tests", v * 5 + s, TestModels.FashionPng(v % 10), reference, Settings(s), 11);
            return Assert.IsType<TuningReply.Tuned>(await engine.EnqueueAsync(new TuningWorkItem(TestModels.Tiny, request, vocabulary))).Outcome;
        }

        var tasks = new List<Task<TuningOutcome>>();
        for (var v = 0; v < 50; v++)
            for (var s = 0; s < 5; s++)
            {
                tasks.Add(Tune(v, s));
                AssertWithinBounds(caches);
                await Task.Yield();
            }
        while (!tasks.All(t => t.IsCompleted))
        {
            AssertWithinBounds(caches);
            await Task.Delay(5);
        }
        var outcomes = await Task.WhenAll(tasks);
        AssertWithinBounds(caches);

        Assert.Equal(50, fetches);                                  // once per reference: its five settings found it cached
        Assert.All(caches, c => Assert.True(c.Evictions > 0, $"{c.Name} never evicted"));
        Assert.True(metrics.Values("tapt.vision.cache.evictions", null, (CacheMetrics.CacheTag, "tuning-engine.defenses")).Sum() >= engine.DefenseCache.Evictions);

        // The first vocabulary again, long evicted everywhere: the same results as the first time and as uncached tuning.
        var again = await Task.WhenAll(Enumerable.Range(0, 5).Select(s => Tune(0, s)));
        Assert.Equal(51, fetches);
        using var checkpoint = ClipCheckpoint.Load(TestModels.TinyDirectory);
        using var clip = new PromptedClip(checkpoint);
        using var artifact = PromptArtifact.Load(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"), checkpoint);
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        foreach (var v in new[] { 0, 23, 49 })
            for (var s = 0; s < 5; s++)
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                using var defense = new TaptDefense(clip, artifact, artifact.Settings with { Views = Settings(s).Views!.Value, Steps = 1, Precision = engine.Precision });
                var x = pre.ToTensor([pre.Load(TestModels.FashionPng(v % 10))]);
                var vocabulary = VocabularyReferences.Resolve(VocabularyReferences.Of(Vocabulary(v)), Vocabulary(v));
                var expected = defense.Classify([new TaptInput(x[0], 11)], vocabulary)[0];
                var got = outcomes[v * 5 + s];
                Assert.Equal(expected.Prediction, got.Prediction);
                Assert.Equal(expected.BaselinePrediction, got.BaselinePrediction);
                if (v == 0) Assert.Equal(got.Prediction, again[s].Prediction);
                // Float reductions may differ in the last bits with the threads libtorch gives them.
                for (var c = 0; c < expected.Probabilities.Length; c++)
                {
                    Assert.Equal(expected.Probabilities[c], got.Probabilities[c], 5);
                    Assert.Equal(expected.BaselineProbabilities[c], got.BaselineProbabilities[c], 5);
                    if (v == 0) Assert.Equal(got.Probabilities[c], again[s].Probabilities[c], 5);
                }
            }
    }

    private static void AssertWithinBounds(IEnumerable<ICacheStatistics> caches)
    {
        foreach (var c in caches)
        {
            Assert.InRange(c.Count, 0, c.MaxEntries);
            Assert.InRange(c.Bytes, 0, c.MaxBytes);
        }
    }
}
