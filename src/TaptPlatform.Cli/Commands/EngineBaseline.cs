using System.Diagnostics;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary>What the engine alone achieved: the settings it ran with and its images per second.</summary>
public sealed record BaselineResult(string Model, string Design, int Views, int Steps, int Batch, int EngineThreads, int TorchThreads,
    int Images, double Seconds, double CpuSeconds)
{
    public double ImagesPerSecond => Images / Seconds;
}

/// <summary>
/// The TAPT engine alone, on the platform's path without the platform: the same PNG bytes decoded by the model's
/// preprocessor, the same prompt artifact and test-time settings (including keeping the tuned prompts, as the
/// silo's engine does for audits), <c>Classify</c> on batches of the engine's size, on as many threads as the
/// engine has — what <c>TuningEngine.Process</c> does per batch, minus queues, grains, storage and HTTP.
/// </summary>
public static class EngineBaseline
{
    public static BaselineResult Measure(string modelDirectory, IReadOnlyList<byte[]> pngs, IReadOnlyList<string> labels, int images, int batch,
        int engineThreads, TextWriter log)
    {
        using var checkpoint = ClipCheckpoint.Load(modelDirectory, CPU);
        var clip = new PromptedClip(checkpoint, CPU);
        using var artifact = Session.LoadArtifact(null, checkpoint);
        var options = artifact.Settings with { ReturnTunedPrompts = true };
        var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
        var vocabulary = new LabelVocabulary(labels);

        void RunBatch(int first, int count)
        {
            var pixels = Enumerable.Range(first, count).Select(i => pre.Load(pngs[i % pngs.Count])).ToList();
            using var scope = NewDisposeScope();
            var x = pre.ToTensor(pixels);
            var inputs = Enumerable.Range(0, count).Select(i => new TaptInput(x[i], 0)).ToList();
            new TaptDefense(clip, artifact, options).Classify(inputs, vocabulary);
        }

        log.WriteLine($"engine alone: {Path.GetFileName(modelDirectory)} {artifact.Shape.Design}, {options.Views} views, {options.Steps} step(s), " +
            $"batches of {batch}, {engineThreads} thread(s), torch threads {get_num_threads()}: warming up");
        RunBatch(0, batch);
        // Each thread takes the next batch until the images are done, as the engine's threads take from its queue.
        var next = -batch;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var threads = Enumerable.Range(0, engineThreads).Select(_ => new Thread(() =>
        {
            int first;
            while ((first = Interlocked.Add(ref next, batch)) < images) RunBatch(first, Math.Min(batch, images - first));
        })).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        var seconds = clock.Elapsed.TotalSeconds;
        var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
        var result = new BaselineResult(Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDirectory)), artifact.Shape.Design.ToString(),
            options.Views, options.Steps, batch, engineThreads, get_num_threads(), images, seconds, cpuSeconds);
        log.WriteLine(FormattableString.Invariant($"engine alone: {images} images in {seconds:0.0} s = {result.ImagesPerSecond:0.00} img/s, {1000 * cpuSeconds / images:0} ms of CPU per image"));
        return result;
    }
}
