using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Evaluation;

[GenerateSerializer]
public sealed class EvaluationIndexState
{
    [Id(0)] public List<string> JobIds { get; set; } = [];
}

/// <summary>The evaluation ids of one tenant (key: tenant id), oldest first; the oldest are dropped beyond <see cref="IEvaluationIndexGrain.MaxEntries"/>.</summary>
public sealed class EvaluationIndexGrain(
    [PersistentState("evaluations", GrainStorageNames.Jobs)] IPersistentState<EvaluationIndexState> state) : Grain, IEvaluationIndexGrain
{
    public async Task AddAsync(string jobId)
    {
        Identifiers.RequireJobId(jobId);
        if (state.State.JobIds.Contains(jobId)) return;
        state.State.JobIds.Add(jobId);
        if (state.State.JobIds.Count > IEvaluationIndexGrain.MaxEntries) state.State.JobIds.RemoveRange(0, state.State.JobIds.Count - IEvaluationIndexGrain.MaxEntries);
        await state.WriteStateAsync();
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != this.GetPrimaryKeyString()) return 0;
        var cleared = await TenantData.ClearAsync(state);
        DeactivateOnIdle();
        return cleared;
    }

    public Task<ImmutableArray<string>> ListAsync() => Task.FromResult(state.State.JobIds.ToImmutableArray());

    public Task<bool> ContainsAsync(string jobId) => Task.FromResult(state.State.JobIds.Contains(jobId));
}
