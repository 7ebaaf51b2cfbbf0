using System.Diagnostics;
using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using Xunit.Abstractions;

namespace TaptPlatform.Grains.Tests;

/// <summary>The issue's acceptance check on the shipped default model (models/fashion-clip-small).</summary>
[Collection(PlatformCollection.Name)]
public sealed class FashionMnistAcceptanceTests(PlatformFixture platform, ITestOutputHelper output)
{
    private const int Images = 200;
    private const int Seed = 0;
    private const int CliImages = 16;

    /// <summary>Top-2 gap below which a batching-order rounding difference may flip a prediction.</summary>
    private const float TieGap = 1e-4f;

    [Fact]
    public async Task A_200_image_fashion_mnist_job_on_the_default_model_matches_in_process_tapt_and_keeps_its_artifacts_in_blob_storage()
    {
        var modelDir = TestModels.DefaultDirectory;
        var artifactPath = Path.Combine(modelDir, "tapt-prompts.safetensors");
        Assert.True(File.Exists(Path.Combine(modelDir, "config.json")) && File.Exists(artifactPath),
            $"The default model is missing: {modelDir} needs a Hugging Face CLIP directory with tapt-prompts.safetensors " +
            "(the shipped models/fashion-clip-small, or set TAPT_MODEL). This acceptance test runs the job against it.");

        var cluster = await platform.ClusterAsync();
        var tenantId = PlatformFixture.NewTenant("fmnist");
        var tenant = await PlatformFixture.TenantWithFashionSetupAsync(cluster.Client, tenantId, TestModels.Default);
        var job = cluster.Client.GetGrain<IJobGrain>((await tenant.CreateJobAsync(new JobRequest("fashion", "default", Seed: Seed))).JobId);
        var pngs = Enumerable.Range(0, Images).Select(TestModels.FashionPng).ToArray();
        var clock = Stopwatch.StartNew();
        foreach (var chunk in PlatformFixture.FashionImages(Enumerable.Range(0, Images)).Chunk(50))
            Assert.Empty((await job.AddImagesAsync(tenantId, [.. chunk])).Rejected);
        await job.StartAsync(tenantId);
        var done = await PlatformFixture.WaitForJobAsync(job, tenantId, TimeSpan.FromMinutes(30));
        output.WriteLine($"job: {clock.Elapsed.TotalSeconds:F1}s, {done.Counts}");

        // Every image has exactly one result.
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal(new JobCounts(Images, Images, 0, done.Counts.Flagged), done.Counts);
        var results = (await job.GetResultsAsync(tenantId, 0, 1000)).Items;
        Assert.Equal(Enumerable.Range(0, Images), results.Select(r => r.Index));

        // The engine ran in "auto" precision: bf16 on CPUs with native bf16, fp32 elsewhere; every outcome names it.
        var ran = (await job.GetResultDetailAsync(tenantId, 0)).Outcome!.Precision;
        Assert.Equal(TaptPrecisions.Name(TaptPrecisions.Fastest(TorchSharp.torch.CPU)), ran);
        Assert.True(TaptPrecisions.TryParse(ran, out var precision));

        // The same images, preprocessed the same way, through TaptDefense in process with the job's seed and precision.
        clock.Restart();
        var expected = new List<TaptResult>();
        using (var checkpoint = ClipCheckpoint.Load(modelDir))
        using (var artifact = PromptArtifact.Load(artifactPath, checkpoint))
        {
            var clip = new PromptedClip(checkpoint);
            var pre = new ImagePreprocessor(checkpoint.Preprocessor.ImageOptions);
            var defense = new TaptDefense(clip, artifact, artifact.Settings with { Precision = precision });
            var vocabulary = new LabelVocabulary(TestModels.FashionLabels);
            foreach (var chunk in pngs.Chunk(8))
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                var x = pre.ToTensor(chunk.Select(p => pre.Load(p)).ToList());
                expected.AddRange(defense.Classify(Enumerable.Range(0, chunk.Length).Select(i => new TaptInput(x[i], Seed)).ToList(), vocabulary));
            }
        }
        output.WriteLine($"in-process TaptDefense: {clock.Elapsed.TotalSeconds:F1}s");
        var ties = 0;
        for (var i = 0; i < Images; i++)
        {
            var detail = (await job.GetResultDetailAsync(tenantId, i)).Outcome!;
            var e = expected[i];
            if (detail.Prediction != e.Prediction || detail.BaselinePrediction != e.BaselinePrediction)
            {
                var top = e.Probabilities.OrderDescending().Take(2).ToArray();
                Assert.True(top[0] - top[1] < TieGap,
                    $"image {i}: the job predicted {detail.Prediction} (CLIP {detail.BaselinePrediction}), in-process TAPT {e.Prediction} (CLIP {e.BaselinePrediction}); " +
                    $"probabilities job [{string.Join(", ", detail.Probabilities.Select(p => p.ToString("F5")))}] vs [{string.Join(", ", e.Probabilities.Select(p => p.ToString("F5")))}]");
                ties++;
            }
            for (var c = 0; c < e.Probabilities.Length; c++) Assert.Equal(e.Probabilities[c], detail.Probabilities[c], 3);
            Assert.Equal(e.Prediction == e.BaselinePrediction ? 0 : 1, detail.Prediction == detail.BaselinePrediction ? 0 : 1);
        }
        output.WriteLine($"predictions equal for {Images - ties}/{Images} images ({ties} within the {TieGap} tie gap)");

        // The tapt CLI, where it is built (as `dotnet test TaptPlatform.sln` does), agrees on a subset.
        if (CliDll() is { } tapt) CompareWithCli(tapt, modelDir, pngs.Take(CliImages).ToArray(), results);
        else output.WriteLine("tapt.dll not built; CLI comparison skipped (the in-process comparison above covers the same computation)");

        // Inputs, results and audit records of flagged images are in blob storage.
        var container = new BlobServiceClient(platform.Storage.ConnectionString).GetBlobContainerClient(BlobArtifactStore.ContainerName(tenantId));
        var blobs = new List<BlobItem>();
        await foreach (var b in container.GetBlobsAsync(new GetBlobsOptions { Prefix = BlobArtifactStore.JobPrefix(job.GetPrimaryKeyString()) })) blobs.Add(b);
        int Count(string kind) => blobs.Count(b => b.Name.Contains($"/{kind}/", StringComparison.Ordinal));
        Assert.Equal(Images, Count(ArtifactKinds.Inputs));
        Assert.Equal(Images, Count(ArtifactKinds.Results));
        Assert.Equal(done.Counts.Flagged, Count(ArtifactKinds.Audit));
        Assert.Equal(results.Count(r => r.Flagged), done.Counts.Flagged);
        if (results.FirstOrDefault(r => r.Flagged) is { } flagged)
        {
            using var audit = JsonDocument.Parse(await job.GetAuditRecordAsync(tenantId, flagged.Index));
            Assert.Equal("tapt-audit", audit.RootElement.GetProperty("format").GetString());
            Assert.NotEmpty(audit.RootElement.GetProperty("reasons").EnumerateArray());
            Assert.NotEmpty(audit.RootElement.GetProperty("tuning").GetProperty("stepMetrics").EnumerateArray());
            // The tuned prompts of the flagged image, by name, e.g. "visual.0".
            Assert.Contains(audit.RootElement.GetProperty("tuning").GetProperty("tunedPrompts").EnumerateObject(), p => p.Name == "visual.0" && p.Value.GetArrayLength() > 0);
        }
        output.WriteLine($"artifacts: {blobs.Count} blobs, {done.Counts.Flagged} flagged");
    }

    private void CompareWithCli(string tapt, string modelDir, byte[][] pngs, IReadOnlyList<ImageResult> results)
    {
        var dir = Directory.CreateTempSubdirectory("tapt-acceptance-").FullName;
        try
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { tapt, "classify", "--model", modelDir, "--seed", Seed.ToString(System.Globalization.CultureInfo.InvariantCulture), "--precision", "auto", "--json" }) psi.ArgumentList.Add(a);
            for (var i = 0; i < pngs.Length; i++)
            {
                var path = Path.Combine(dir, $"{i:D3}.png");
                File.WriteAllBytes(path, pngs[i]);
                psi.ArgumentList.Add("--image");
                psi.ArgumentList.Add(path);
            }
            foreach (var label in TestModels.FashionLabels)
            {
                psi.ArgumentList.Add("--label");
                psi.ArgumentList.Add(label);
            }
            var clock = Stopwatch.StartNew();
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.True(p.WaitForExit(600_000), "tapt classify did not finish");
            Assert.True(p.ExitCode == 0, $"tapt classify failed: {stderr.Result}");
            var cli = JsonDocument.Parse(stdout.Result).RootElement.GetProperty("results").EnumerateArray()
                .Select(r => (Prediction: r.GetProperty("prediction_index").GetInt32(),
                    Probabilities: r.GetProperty("probabilities").EnumerateArray().Select(p => p.GetSingle()).ToArray()))
                .ToArray();
            Assert.Equal(pngs.Length, cli.Length);
            for (var i = 0; i < cli.Length; i++)
            {
                if (cli[i].Prediction == results[i].Prediction) continue;
                var top = cli[i].Probabilities.OrderDescending().Take(2).ToArray();
                Assert.True(top[0] - top[1] < TieGap, $"image {i}: the job predicted {results[i].Prediction}, tapt classify {cli[i].Prediction}");
            }
            output.WriteLine($"tapt classify agrees on {cli.Length} images ({clock.Elapsed.TotalSeconds:F1}s)");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The CLI built by the same configuration, if any.</summary>
    private static string? CliDll()
    {
        // The test binaries live in bin/{Configuration}/net10.0/.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent?.Name ?? "Debug";
        var path = Path.Combine(RepositoryRoot.Find(), "src", "TaptPlatform.Cli", "bin", configuration, "net10.0", "tapt.dll");
        return File.Exists(path) ? path : null;
    }
}
