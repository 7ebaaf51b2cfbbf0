using System.Collections.Immutable;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Models;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision;
using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Grains.Artifacts;

/// <summary>
/// Checks prompt artifacts against one model (key: model name) on an accelerator silo, where the model's files are:
/// an uploaded artifact is read from its staging blob to a temporary file, its header checked again (a grain does not
/// trust its caller), bound to this model's checksum, and loaded exactly as the tuning engine loads it (every prompt and
/// statistics shape against the model, the recorded test-time settings). Holds no state.
/// </summary>
[AcceleratorPlacementFilter]
[Reentrant]
public sealed class PromptArtifactCheckGrain(IServiceProvider services, PromptArtifactStore store, ILogger<PromptArtifactCheckGrain> log)
    : Grain, IPromptArtifactCheckGrain
{
    private string Model => this.GetPrimaryKeyString();

    public async Task<PromptArtifactInfo> CheckStagedAsync(string tenantId, string name, StagedPromptArtifact staged)
    {
        Identifiers.RequireTenantId(tenantId);
        if (!Identifiers.IsValidName(name)) throw new TaptRequestException($"invalid prompt artifact name '{name}'");
        var file = Path.Combine(Path.GetTempPath(), $"tapt-artifact-check-{Guid.NewGuid():N}.safetensors");
        try
        {
            await using (var f = File.Create(file)) await store.ReadStagedAsync(tenantId, staged, f);
            await using (var f = File.OpenRead(file))
            {
                if (f.Length != staged.Length || Convert.ToHexStringLower(await SHA256.HashDataAsync(f)) != staged.Sha256)
                    throw new TaptRequestException("the staged artifact is not the content that was uploaded: upload it again");
            }
            // Loading is synchronous tensor work: on the silo's evaluation thread, which a stopping silo joins before it frees the models.
            try
            {
                await services.GetRequiredService<RegisteredModels>().EnsureAsync(Model);
            }
            catch (TuningFailedException e)
            {
                throw new TaptRequestException(e.Message);
            }
            return await Engine().RunAsync(tenantId, _ => Check(file, name, staged));
        }
        finally
        {
            TryDelete(file);
        }
    }

    public async Task<ImmutableArray<PromptArtifactInfo>> ListOperatorArtifactsAsync()
    {
        try
        {
            await services.GetRequiredService<RegisteredModels>().EnsureAsync(Model);
        }
        catch (TuningFailedException)
        {
            throw new TaptNotFoundException($"unknown model '{Model}'");
        }
        var catalog = Engine().Catalog;
        var directory = catalog.Locate(Model);
        if (directory is null || !Directory.Exists(directory)) throw new TaptNotFoundException($"unknown model '{Model}'");
        var found = new List<PromptArtifactInfo>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.safetensors").Order(StringComparer.Ordinal))
        {
            var fileName = Path.GetFileName(path);
            if (fileName == "model.safetensors") continue;
            try
            {
                var header = PromptArtifactHeader.ReadFile(path);
                using var f = File.OpenRead(path);
                found.Add(Describe(header, Path.GetFileNameWithoutExtension(fileName), 0, PromptArtifactInfo.OperatorOwner, f.Length,
                    Convert.ToHexStringLower(SHA256.HashData(f)), null));
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                log.LogWarning("Model {Model}: {File} is not a usable prompt artifact: {Reason}", Model, fileName, e.Message);
            }
        }
        return [.. found];
    }

    private PromptArtifactInfo Check(string file, string name, StagedPromptArtifact staged)
    {
        PromptArtifactHeader header;
        try
        {
            header = PromptArtifactHeader.ReadFile(file);
        }
        catch (InvalidDataException e)
        {
            throw new TaptRequestException($"not a usable prompt artifact: {e.Message}");
        }
        if (header.TotalBytes != staged.Length)
            throw new TaptRequestException($"the file is {staged.Length} bytes but its header describes {header.TotalBytes}");
        BoundedCache<string, LoadedModel>.Lease lease;
        try
        {
            lease = Engine().Catalog.Rent(Model, ComputeDevice.Parse(Engine().Device));
        }
        catch (TuningFailedException e)
        {
            throw new TaptRequestException(e.Message);
        }
        using var _ = lease;
        var model = lease.Value;
        if (header.ModelChecksum != model.Checkpoint.Checksum)
            throw new TaptRequestException($"the artifact belongs to the model with checksum {header.ModelChecksum}, not to model '{Model}' ({model.Checkpoint.Checksum}): train or calibrate prompts for this model");
        try
        {
            using var artifact = PromptArtifact.Load(file, model.Checkpoint);
            artifact.SettingsWith(null, null, null, null);
        }
        catch (PromptArtifactException e)
        {
            throw new TaptRequestException(e.Message.Replace(file, "the artifact", StringComparison.Ordinal));
        }
        catch (ArgumentException e)
        {
            throw new TaptRequestException($"the artifact's test-time settings are not valid: {e.Message}");
        }
        return Describe(header, name, 0, PromptArtifactInfo.TenantOwner, staged.Length, staged.Sha256, null);
    }

    private PromptArtifactInfo Describe(PromptArtifactHeader header, string name, int version, string owner, long bytes, string sha256, DateTimeOffset? createdAt) =>
        new(name, version, owner, Model, header.ModelChecksum, header.Shape.Design.ToString(), header.Shape.TokensPerLayer, bytes, sha256, createdAt,
            header.Tensors.Count, header.HasCleanPrompts, header.HasStatistics);

    private EvaluationEngine Engine() => services.GetService<EvaluationEngine>()
        ?? throw new InvalidOperationException($"prompt artifact check grain '{Model}' activated on a silo without an evaluation engine (cpu-only?)");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A temporary file left behind.
        }
    }
}
