using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// The creation of a job over a tenant's labelled images (an evaluation, a training run): the id must be the grain's and
/// unused (the same definition again is a no-op), the request valid, the vocabulary at least two labels, and the tenant
/// not being erased; once recorded, the tenant's retention sweep is scheduled, since the job's images will expire.
/// </summary>
public static class LabelledJobCreation
{
    /// <param name="existing">The tenant and creation time of the definition the grain already holds, if any.</param>
    /// <param name="validate">The request's own checks (a <see cref="TaptRequestException"/> refuses it).</param>
    /// <param name="recordAsync">Records the definition in the grain's state and saves it.</param>
    public static async Task CreateAsync(IGrainFactory grains, string jobId, string definitionJobId, string tenantId, DateTimeOffset createdAt,
        (string TenantId, DateTimeOffset CreatedAt)? existing, VocabularyVersion vocabulary, Action validate, Func<Task> recordAsync)
    {
        Identifiers.RequireTenantId(tenantId);
        if (definitionJobId != jobId) throw new TaptRequestException("the definition is for another job id");
        if (existing is { } e)
        {
            if (e.TenantId == tenantId && e.CreatedAt == createdAt) return;
            throw new TaptRequestException($"job id '{jobId}' is already in use");
        }
        validate();
        if (vocabulary.Labels.Length < 2) throw new TaptRequestException("the vocabulary needs at least two labels");
        if ((await grains.GetGrain<ITenantErasureGrain>(tenantId).GetAsync()).Phase != ErasurePhase.None)
            throw new TaptConflictException($"tenant '{tenantId}' is being erased");
        await recordAsync();
        await grains.GetGrain<IRetentionGrain>(tenantId).EnsureScheduledAsync();
    }
}
