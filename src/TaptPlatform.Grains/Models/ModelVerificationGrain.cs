using System.Collections.Immutable;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Models;

/// <summary>
/// Verifies a model folder in the models container on an accelerator silo (a grain does not trust its caller): the files
/// are listed and bounded, downloaded to a temporary folder with their SHA-256, and loaded on the silo's evaluation
/// thread exactly as a silo loads a model (config, tokenizer, preprocessing, every weight by name and shape); every
/// prompt artifact beside it must be bound to the model's checksum. Holds no state.
/// </summary>
[AcceleratorPlacementFilter]
[StatelessWorker(1)]
public sealed class ModelVerificationGrain(IServiceProvider services, ModelStore store, IOptions<ModelRegistryOptions> registry, TimeProvider clock,
    ILogger<ModelVerificationGrain> log) : Grain, IModelVerificationGrain
{
    /// <summary>The files <see cref="ClipCheckpoint.Load"/> reads.</summary>
    public static readonly ImmutableArray<string> RequiredFiles =
        ["config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json"];

    public async Task<RegisteredModel> VerifyAsync(string prefix, string source)
    {
        var name = Identifiers.RequireName(this.GetPrimaryKeyString(), "model");
        prefix = ModelStore.RequirePrefix(prefix);
        var listed = await store.ListAsync(prefix);
        var missing = RequiredFiles.Where(f => listed.All(l => l.Name != f)).ToList();
        if (missing.Count > 0) throw new TaptRequestException($"the model folder '{prefix}' lacks {string.Join(", ", missing)} (a Hugging Face CLIP folder has them)");
        var total = listed.Sum(f => f.Bytes);
        if (total > registry.Value.MaxBytes) throw new TaptRequestException($"the model folder holds {total} bytes, more than the {registry.Value.MaxBytes} a model may have (Tapt:ModelRegistry:MaxBytes)");

        var directory = Path.Combine(Path.GetTempPath(), $"tapt-model-check-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        try
        {
            var files = ImmutableArray.CreateBuilder<ModelFile>(listed.Count);
            foreach (var (file, bytes) in listed)
            {
                using var sha = SHA256.Create();
                await using (var target = File.Create(Path.Combine(directory, file)))
                await using (var hashing = new CryptoStream(target, sha, CryptoStreamMode.Write))
                {
                    await store.DownloadAsync(prefix, file, hashing);
                    await hashing.FlushFinalBlockAsync();
                }
                var length = new FileInfo(Path.Combine(directory, file)).Length;
                if (length > registry.Value.MaxBytes) throw new TaptRequestException($"'{file}' grew past the limit while it was read");
                files.Add(new ModelFile(file, length, Convert.ToHexStringLower(sha.Hash!)));
            }
            var engine = services.GetService<EvaluationEngine>()
                ?? throw new InvalidOperationException("model verification activated on a silo without an evaluation engine (cpu-only?)");
            var verified = await engine.RunAsync("operator", _ => Load(directory, files.ToImmutable()));
            var model = verified with { Name = name, Prefix = prefix, Source = source, RegisteredAt = clock.GetUtcNow() };
            log.LogInformation("Verified model {Model} from {Prefix}: {Checksum}, {Bytes} bytes, {Size}px", name, prefix, model.Checksum, model.Bytes, model.ImageSize);
            return model;
        }
        finally
        {
            TryDelete(directory);
        }
    }

    /// <summary>Runs on the evaluation thread: loads the folder as a silo would and describes it.</summary>
    private static RegisteredModel Load(string directory, ImmutableArray<ModelFile> files)
    {
        ClipCheckpoint checkpoint;
        try
        {
            checkpoint = ClipCheckpoint.Load(directory);
        }
        catch (Exception e) when (e is ClipCheckpointException or FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            throw new TaptRequestException($"not a loadable CLIP folder: {e.Message.Replace(directory, "the folder", StringComparison.Ordinal)}");
        }
        using (checkpoint)
        {
            foreach (var f in files.Where(f => f.Path.EndsWith(".safetensors", StringComparison.Ordinal) && f.Path != "model.safetensors"))
            {
                try
                {
                    using var artifact = PromptArtifact.Load(Path.Combine(directory, f.Path), checkpoint);
                }
                catch (PromptArtifactException e)
                {
                    throw new TaptRequestException($"prompt artifact '{f.Path}' does not fit the model: {e.Message.Replace(directory, "the folder", StringComparison.Ordinal)}");
                }
            }
            var v = checkpoint.Config.Vision;
            return new RegisteredModel("", checkpoint.Checksum, "", files, files.Sum(f => f.Bytes), v.ImageSize, v.PatchSize, v.HiddenSize,
                v.NumHiddenLayers, default, "");
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A temporary folder left behind.
        }
    }
}
