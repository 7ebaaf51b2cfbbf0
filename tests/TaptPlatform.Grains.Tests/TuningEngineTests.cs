using System.Collections.Immutable;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Tests;

[Collection(PlatformCollection.Name)]
public sealed class TuningEngineTests
{
    private static readonly LabelVocabulary Fashion = new(TestModels.FashionLabels, [.. TestModels.FashionLabels.Select(l => $"a photo of a {l}.")]);

    private static TuningRequest Request(int index, int seed = 5, LabelVocabulary? vocabulary = null) => new(
        "engine-tests", "job-engine-tests", index, TestModels.FashionPng(index),
        new VocabularyReference("engine-tests", "fashion", 1, (vocabulary ?? Fashion).Key),
        new TuningSettings(null, "VLI", 16, 2, null), seed);

    private static TuningWorkItem Item(TuningRequest request, Action<StepMetrics>? onStep = null) => new(TestModels.Tiny, request, Fashion, onStep);

    [Fact]
    public async Task The_engine_batches_queued_images_and_its_bounded_queue_holds_back_the_rest()
    {
        const int capacity = 4, batch = 4, images = 24;
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions { Directories = { [TestModels.Tiny] = TestModels.TinyDirectory } }), NullLogger<ModelCatalog>.Instance);
        using var engine = new TuningEngine(Options.Create(new TuningEngineOptions { Threads = 1, QueueCapacity = capacity, MaxBatchSize = batch }), catalog, NullLogger<TuningEngine>.Instance);
        var steps = new System.Collections.Concurrent.ConcurrentBag<(int Image, int Step)>();

        var tasks = Enumerable.Range(0, images).Select(i => engine.EnqueueAsync(Item(Request(i), m => steps.Add((i, m.Step))))).ToList();
        var maxAccepted = 0;
        while (!tasks.All(t => t.IsCompleted))
        {
            maxAccepted = Math.Max(maxAccepted, engine.Pending);
            await Task.Delay(2);
        }
        var outcomes = (await Task.WhenAll(tasks)).Select(r => Assert.IsType<TuningReply.Tuned>(r).Outcome).ToArray();

        // Back-pressure: never more accepted than the queue plus what the one thread holds (a batch and its carry-over).
        Assert.InRange(maxAccepted, 1, capacity + 2 * batch);
        Assert.True(engine.LargestBatch > 1, "queued images were never batched");
        Assert.True(engine.BatchesRun < images);
        Assert.Equal(images, engine.ImagesRun);
        Assert.Equal(Enumerable.Range(0, images), outcomes.Select(o => o.ImageIndex));
        Assert.Equal(images * 2, steps.Count);

        // Batched results equal one-image-at-a-time TAPT in process.
        using var checkpoint = ClipCheckpoint.Load(TestModels.TinyDirectory);
        var clip = new PromptedClip(checkpoint);
        using var artifact = PromptArtifact.Load(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"), checkpoint);
        var defense = new TaptDefense(clip, artifact, artifact.Settings with { Views = 16, Steps = 2, Precision = engine.Precision });
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        var vocabulary = new LabelVocabulary(TestModels.FashionLabels);
        foreach (var i in new[] { 0, 5, 23 })
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var x = pre.ToTensor([pre.Load(TestModels.FashionPng(i))]);
            var expected = defense.Classify([new TaptInput(x[0], 5)], vocabulary)[0];
            Assert.Equal(expected.Prediction, outcomes[i].Prediction);
            Assert.Equal(expected.BaselinePrediction, outcomes[i].BaselinePrediction);
            for (var c = 0; c < expected.Probabilities.Length; c++) Assert.Equal(expected.Probabilities[c], outcomes[i].Probabilities[c], 4);
        }
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16-scoring")]
    [InlineData("bf16")]
    [InlineData("auto")]
    public async Task The_engine_runs_the_step_in_its_precision_and_every_outcome_names_it(string setting)
    {
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions { Directories = { [TestModels.Tiny] = TestModels.TinyDirectory } }), NullLogger<ModelCatalog>.Instance);
        using var engine = new TuningEngine(Options.Create(new TuningEngineOptions { Precision = setting }), catalog, NullLogger<TuningEngine>.Instance);
        var expected = TaptPrecisions.TryParse(setting, out var named) ? named : TaptPrecisions.Fastest(TorchSharp.torch.CPU);
        Assert.Equal(expected, engine.Precision);
        var outcome = Assert.IsType<TuningReply.Tuned>(await engine.EnqueueAsync(Item(Request(4)))).Outcome;
        Assert.Equal(TaptPrecisions.Name(expected), outcome.Precision);

        // The outcome is what the in-process defense gives in that precision.
        using var checkpoint = ClipCheckpoint.Load(TestModels.TinyDirectory);
        var clip = new PromptedClip(checkpoint);
        using var artifact = PromptArtifact.Load(Path.Combine(TestModels.TinyDirectory, "tapt-prompts.safetensors"), checkpoint);
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        using var scope = TorchSharp.torch.NewDisposeScope();
        var x = pre.ToTensor([pre.Load(TestModels.FashionPng(4))]);
        var local = new TaptDefense(clip, artifact, artifact.Settings with { Views = 16, Steps = 2, Precision = expected })
            .Classify([new TaptInput(x[0], 5)], new LabelVocabulary(TestModels.FashionLabels))[0];
        for (var c = 0; c < local.Probabilities.Length; c++) Assert.Equal(local.Probabilities[c], outcome.Probabilities[c], 4);
    }

    [Fact]
    public async Task The_engine_reports_its_queue_depth_batches_steps_and_images_as_metrics()
    {
        const int capacity = 4, batch = 4, images = 16, steps = 2;
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        using var metrics = new ObservabilityTests.MetricRecorder(m => ReferenceEquals(m.Scope, factory));
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions { Directories = { [TestModels.Tiny] = TestModels.TinyDirectory } }), NullLogger<ModelCatalog>.Instance);
        using var engine = new TuningEngine(Options.Create(new TuningEngineOptions { Threads = 1, QueueCapacity = capacity, MaxBatchSize = batch }), catalog,
            NullLogger<TuningEngine>.Instance, new TuningMetrics(factory));

        var tasks = Enumerable.Range(0, images).Select(i => engine.EnqueueAsync(Item(Request(i) with
        {
            Settings = new TuningSettings(null, "VLI", 16, steps, null),
        }))).ToList();
        tasks.Add(engine.EnqueueAsync(Item(Request(images) with { Image = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0] })));
        while (!tasks.All(t => t.IsCompleted))
        {
            metrics.Observe();
            await Task.Delay(2);
        }
        await Task.WhenAll(tasks);
        metrics.Observe();

        // The gauge saw the bounded queue in use (at most the queue plus one carried batch) and empty at the end.
        var depth = metrics.Values("tapt.tuning.queue.depth", tenant: null);
        Assert.InRange(depth.Max(), 1, capacity + batch);
        Assert.Equal(0, depth[^1]);
        Assert.Equal(0, metrics.Values("tapt.tuning.pending", tenant: null)[^1]);
        Assert.Equal(images, metrics.Sum("tapt.tuning.images", "engine-tests", ("outcome", "tuned"), ("model", TestModels.Tiny), ("design", "VLI")));
        Assert.Equal(1, metrics.Sum("tapt.tuning.images", "engine-tests", ("outcome", "rejected")));
        Assert.Equal(images, metrics.Values("tapt.tuning.image.duration", "engine-tests").Count);
        var sizes = metrics.Values("tapt.tuning.batch.size", tenant: null);
        Assert.Equal(images, sizes.Sum());
        Assert.Equal(sizes.Count, metrics.Values("tapt.tuning.batch.duration", tenant: null).Count);
        Assert.Equal(sizes.Count * steps, metrics.Values("tapt.tuning.step.duration", tenant: null).Count);
    }

    [Fact]
    public async Task An_undecodable_image_is_rejected_alone_and_an_unknown_model_fails_permanently()
    {
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions { Directories = { [TestModels.Tiny] = TestModels.TinyDirectory } }), NullLogger<ModelCatalog>.Instance);
        using var engine = new TuningEngine(Options.Create(new TuningEngineOptions()), catalog, NullLogger<TuningEngine>.Instance);
        var good = engine.EnqueueAsync(Item(Request(1)));
        var bad = engine.EnqueueAsync(Item(Request(2) with { Image = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0] }));

        Assert.Equal(1, Assert.IsType<TuningReply.Tuned>(await good).Outcome.ImageIndex);
        var rejected = Assert.IsType<TuningReply.Rejected>(await bad);
        Assert.Equal(2, rejected.ImageIndex);
        Assert.StartsWith("image rejected: ", rejected.Error);
        var e = await Assert.ThrowsAsync<TuningFailedException>(() => engine.EnqueueAsync(new TuningWorkItem("no-such-model", Request(3), Fashion)));
        Assert.False(e.Transient);
        Assert.Contains("no-such-model", e.Message);
    }
}
