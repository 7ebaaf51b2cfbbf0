using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Models;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision;
using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// The prompt training executor of one accelerator silo (key: that silo's address; <see cref="SiloKeyedPlacement"/>). Each
/// call is one step of a job, run synchronously on the silo's <see cref="EvaluationEngine"/> thread (whose queue serves
/// tenants in turn) in slices, so another tenant's evaluation waits for one slice, not a whole epoch; the job's images
/// are read from its input blobs and decoded there. An epoch starts from the checkpoint
/// blob the job stored after the step before (<see cref="TrainingCheckpoints"/>) and returns the next one, so the run
/// needs nothing of this silo between calls: after a silo died, any other continues from the last checkpoint.
/// </summary>
[SiloKeyedPlacement]
[Reentrant]
public sealed class PromptTrainingWorkerGrain(IServiceProvider services, IArtifactStore store, ImageStaging staging, ILocalSiloDetails silo,
    ILogger<PromptTrainingWorkerGrain> log) : Grain, IPromptTrainingWorkerGrain
{
    private sealed record Images(IReadOnlyList<byte[]?> Bytes, ImmutableArray<int> Labels);

    public async Task<PromptTrainingAccuracy> BaselineAsync(PromptTrainingWork work, CancellationToken cancellation = default)
    {
        var (engine, images) = await PrepareAsync(work, work.Validation, cancellation);
        using var step = await OpenAsync(engine, work, images, cancellation);
        var (_, artifact) = step.Model.Artifact(null);
        return Accuracy(await step.ValidateAsync(artifact.Adversarial, work.Validation, work.Request.Epsilon, work.Request.Seed));
    }

    public async Task<PromptTrainingEpochResult> TrainEpochAsync(PromptTrainingWork work, int step, CancellationToken cancellation = default)
    {
        if (step < 0 || step >= 2 * work.Request.Epochs) throw new TaptRequestException($"step {step} is not one of the job's");
        var (engine, images) = await PrepareAsync(work, [.. work.Train, .. work.Validation], cancellation);
        var before = step == 0 ? null : await ReadCheckpointAsync(work, step, cancellation);
        var after = TempFile("checkpoint");
        try
        {
            using var units = await OpenAsync(engine, work, images, cancellation);
            var settings = Settings(units.Model, work.Request);
            var run = await units.RunAsync(_ => units.Own(before is null ? AptRun.Start(units.Model.Clip, settings) : AptRun.Resume(units.Model.Clip, settings, before)));
            if (run.StepsDone != step) throw new TuningFailedException($"the checkpoint holds {run.StepsDone} epoch(s), not {step}");
            var adversarial = run.NextIsAdversarial;
            var pass = await units.RunAsync(_ => units.Own(run.BeginNext(units.Vocabulary, units.Data, work.Train)));
            await units.InSlicesAsync(token => pass.TrainFor(engine.Slice, _ => token.ThrowIfCancellationRequested()));
            var figures = run.Complete(pass);
            var validation = await units.ValidateAsync(adversarial ? run.Adversarial : run.Clean, work.Validation, adversarial ? work.Request.Epsilon : 0,
                work.Request.Seed + step);
            await units.RunAsync(_ =>
            {
                run.Save(after);
                return true;
            });
            var epoch = new PromptTrainingEpoch(adversarial ? "adversarial" : "clean", figures.Epoch, figures.LearningRate, figures.Loss, figures.CleanAccuracy,
                adversarial ? figures.AdversarialAccuracy : null, Accuracy(validation), figures.Seconds, silo.SiloAddress.ToString());
            log.LogInformation("Prompt training {Job}: {Prompts} epoch {Epoch} on {Silo}, loss {Loss:F4}", work.JobId, epoch.Prompts, epoch.Epoch, silo.SiloAddress, epoch.Loss);
            return new PromptTrainingEpochResult(epoch, await File.ReadAllBytesAsync(after, cancellation));
        }
        finally
        {
            TryDelete(before);
            TryDelete(after);
        }
    }

    public async Task<PromptTrainingOutcome> FinishAsync(PromptTrainingWork work, CancellationToken cancellation = default)
    {
        var (engine, images) = await PrepareAsync(work, [.. work.Train, .. work.Validation], cancellation);
        var total = 2 * work.Request.Epochs;
        var checkpoint = await ReadCheckpointAsync(work, total, cancellation);
        var file = TempFile("artifact");
        try
        {
            PromptTrainingAccuracy after;
            using (var units = await OpenAsync(engine, work, images, cancellation))
            {
                var run = await units.RunAsync(_ => units.Own(AptRun.Resume(units.Model.Clip, Settings(units.Model, work.Request), checkpoint)));
                if (!run.Finished) throw new TuningFailedException($"the final checkpoint holds {run.StepsDone} of {total} epochs");
                var accuracy = await units.ValidateAsync(run.Adversarial, work.Validation, work.Request.Epsilon, work.Request.Seed);
                after = Accuracy(accuracy);
                await units.RunAsync(_ =>
                {
                    // The test-time settings the operator recorded for this model's default artifact.
                    using var artifact = run.ToArtifact(units.Data, work.Train, units.Model.Artifact(null).Artifact.Settings, Provenance(work, accuracy), work.Request.Seed);
                    artifact.Save(file);
                    return true;
                });
            }
            // Kept through the tenant's prompt artifacts, as an upload is: checked against the model, versioned, listed.
            var id = Guid.NewGuid().ToString("N");
            (long Length, string Sha256)? staged;
            await using (var content = File.OpenRead(file))
                staged = await staging.StageBlobAsync(work.TenantId, PromptArtifactStore.StagingBlobName(id), ReadOnlyMemory<byte>.Empty, content, long.MaxValue, cancellation);
            var info = await GrainFactory.GetGrain<IPromptArtifactsGrain>(work.TenantId)
                .AddVersionAsync(work.Request.ArtifactName, work.Request.Model, new StagedPromptArtifact(id, staged!.Value.Length, staged.Value.Sha256, work.JobId));
            return new PromptTrainingOutcome(info, after);
        }
        finally
        {
            TryDelete(checkpoint);
            TryDelete(file);
        }
    }

    /// <summary>The model leased on the engine thread, and the images (decoded there, batch by batch, as units read them), for the units of one call.</summary>
    private static async Task<TrainingStepUnits> OpenAsync(EvaluationEngine engine, PromptTrainingWork work, Images images, CancellationToken ct)
    {
        var (model, data) = await engine.RunAsync(work.TenantId, _ =>
        {
            var lease = engine.Catalog.Rent(work.Request.Model, Device(engine));
            try
            {
                return (lease, Decode(lease.Value, work, images));
            }
            catch
            {
                lease.Dispose();
                throw;
            }
        }, ct);
        return new TrainingStepUnits(engine, work.TenantId, model, data, Vocabulary(work), ct);
    }

    private static JsonObject Provenance(PromptTrainingWork work, AptAccuracy after) => new()
    {
        ["apt"] = new JsonObject
        {
            ["job"] = work.JobId,
            ["images"] = work.Train.Length,
            ["validation_images"] = work.Validation.Length,
            ["epochs"] = work.Request.Epochs,
            ["batch"] = work.Request.BatchSize,
            ["lr"] = work.Request.LearningRate,
            ["eps"] = work.Request.Epsilon,
            ["attack_steps"] = 2,
            ["seed"] = work.Request.Seed,
            ["validation_clean"] = after.Clean,
            ["validation_robust_pgd10"] = after.Robust,
        },
        ["calibration"] = new JsonObject { ["images"] = work.Train.Length, ["augment"] = true, ["split"] = "train" },
    };

    /// <summary>The engine of this silo and the bytes of the images a step reads (the others stay empty: never decoded).</summary>
    private async Task<(EvaluationEngine Engine, Images Images)> PrepareAsync(PromptTrainingWork work, IEnumerable<int> needed, CancellationToken ct)
    {
        Identifiers.RequireTenantId(work.TenantId);
        Identifiers.RequireJobId(work.JobId);
        var engine = services.GetService<EvaluationEngine>() ?? throw new InvalidOperationException($"silo {silo.SiloAddress} has no evaluation engine (cpu-only?)");
        await services.GetRequiredService<RegisteredModels>().EnsureAsync(work.Request.Model, ct);
        var bytes = new byte[]?[work.ImageLabels.Length];
        var wanted = needed.ToHashSet();
        using var gate = new SemaphoreSlim(8);
        await Task.WhenAll(Enumerable.Range(0, bytes.Length).Select(async i =>
        {
            if (!wanted.Contains(i)) return;
            if (i < 0 || i >= work.ImageLabels.Length) throw new TaptRequestException($"image {i} is not one of the job's");
            await gate.WaitAsync(ct);
            try
            {
                bytes[i] = (await store.GetAsync(work.TenantId, work.JobId, ArtifactKinds.Inputs, i, ct))?.ToArray()
                    ?? throw new TuningFailedException($"the stored image {i} of training job '{work.JobId}' is missing");
            }
            finally
            {
                gate.Release();
            }
        }));
        return (engine, new Images(bytes, work.ImageLabels));
    }

    private async Task<string> ReadCheckpointAsync(PromptTrainingWork work, int stepsDone, CancellationToken ct)
    {
        var stored = await store.GetFileAsync(work.TenantId, work.JobId, TrainingCheckpoints.PathOf(stepsDone), ct)
            ?? throw new TuningFailedException($"training job '{work.JobId}' has no checkpoint after {stepsDone} epoch(s)");
        var path = TempFile("checkpoint");
        await File.WriteAllBytesAsync(path, stored.Content.ToArray(), ct);
        return path;
    }

    /// <summary>The images the step reads, decoded at the model's size batch by batch as the units read them.</summary>
    private static EncodedImageDataset Decode(LoadedModel model, PromptTrainingWork work, Images images) =>
        new(work.Labels, images.Bytes, images.Labels, (i, bytes) =>
        {
            try { return model.Preprocessor.Load(bytes); }
            catch (ImageRejectedException e) { throw new TaptRequestException($"image {i} cannot be decoded: {e.Message}"); }
        }, model.Clip.ImageSize);

    /// <summary>The run's shape: the requested design with the tokens per layer and depth of the model's default artifact (the operator's choice for it).</summary>
    private static AptRunSettings Settings(LoadedModel model, PromptTrainingRequest r)
    {
        var reference = model.Artifact(null).Artifact.Shape;
        var cfg = model.Checkpoint.Config;
        var shape = PromptShape.For(PromptShape.ParseDesign(r.Design), cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers, reference.TokensPerLayer,
            Math.Max(reference.VisionDepth, reference.TextDepth));
        return new AptRunSettings(shape, new Vision.Apt.AptOptions { Epochs = r.Epochs, BatchSize = r.BatchSize, LearningRate = r.LearningRate, Epsilon = r.Epsilon, Seed = r.Seed });
    }

    private static LabelVocabulary Vocabulary(PromptTrainingWork work) => new(work.Labels, work.PromptTexts);

    private static PromptTrainingAccuracy Accuracy(AptAccuracy a) => new(a.Clean, a.Robust, a.Images);

    private static Device Device(EvaluationEngine engine) => ComputeDevice.Parse(engine.Device);

    private static string TempFile(string what) => Path.Combine(Path.GetTempPath(), $"tapt-training-{what}-{Guid.NewGuid():N}.safetensors");

    private static void TryDelete(string? path)
    {
        if (path is null) return;
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* a temporary file left behind */ }
    }
}
