using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Training;

[GenerateSerializer]
public sealed class PromptTrainingIndexState
{
    [Id(0)] public List<string> JobIds { get; set; } = [];
}

/// <summary>The prompt training job ids of one tenant (key: tenant id), oldest first; the oldest are dropped beyond <see cref="IPromptTrainingIndexGrain.MaxEntries"/>.</summary>
public sealed class PromptTrainingIndexGrain(
    [PersistentState("prompt-trainings", GrainStorageNames.Jobs)] IPersistentState<PromptTrainingIndexState> state) : Grain, IPromptTrainingIndexGrain
{
    public async Task AddAsync(string jobId)
    {
        Identifiers.RequireJobId(jobId);
        if (state.State.JobIds.Contains(jobId)) return;
        state.State.JobIds.Add(jobId);
        if (state.State.JobIds.Count > IPromptTrainingIndexGrain.MaxEntries) state.State.JobIds.RemoveRange(0, state.State.JobIds.Count - IPromptTrainingIndexGrain.MaxEntries);
        await state.WriteStateAsync();
    }

    public Task<ImmutableArray<string>> ListAsync() => Task.FromResult(state.State.JobIds.ToImmutableArray());

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != this.GetPrimaryKeyString()) return 0;
        var cleared = await TenantData.ClearAsync(state);
        DeactivateOnIdle();
        return cleared;
    }
}
