using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Models;

[GenerateSerializer]
public sealed class ModelRegistryState
{
    [Id(0)] public Dictionary<string, RegisteredModel> Models { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// The registry of models (one activation for the cluster): the home of every registered model's record. A registration
/// is verified on an accelerator silo before it is recorded; re-registering the same content is a no-op, another
/// content under a taken name a conflict (prompt artifacts and configurations are bound to a name's checksum).
/// </summary>
public sealed class ModelRegistryGrain(
    [PersistentState("model-registry", GrainStorageNames.Jobs)] IPersistentState<ModelRegistryState> state,
    ILogger<ModelRegistryGrain> log) : Grain, IModelRegistryGrain
{
    public async Task<RegisteredModel> RegisterAsync(string name, string prefix, string source)
    {
        Identifiers.RequireName(name, "model");
        var verified = await GrainFactory.GetGrain<IModelVerificationGrain>(name).VerifyAsync(prefix, source);
        if (state.State.Models.TryGetValue(name, out var existing))
        {
            if (existing.Checksum == verified.Checksum) return existing;
            throw new TaptConflictException($"model '{name}' is registered with checksum {existing.Checksum}; this folder has {verified.Checksum}: register it under another name");
        }
        state.State.Models[name] = verified;
        await state.WriteStateAsync();
        log.LogInformation("Registered model {Model} ({Checksum}) from {Prefix}", name, verified.Checksum, verified.Prefix);
        return verified;
    }

    public Task<ImmutableArray<RegisteredModel>> ListAsync() =>
        Task.FromResult(state.State.Models.Values.OrderBy(m => m.Name, StringComparer.Ordinal).ToImmutableArray());

    public Task<RegisteredModel?> GetAsync(string name) =>
        Task.FromResult(state.State.Models.GetValueOrDefault(name));

    public async Task RemoveAsync(string name)
    {
        if (!state.State.Models.Remove(name)) throw new TaptNotFoundException($"model '{name}' is not registered");
        await state.WriteStateAsync();
    }
}
