using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tenants;

namespace TaptPlatform.Grains.Artifacts;

/// <summary>
/// The catalogue of a tenant's uploaded prompt artifacts: versions by name (oldest first) and the highest version number
/// ever given per name, so deleted numbers are not reused. One Azure Table entity, bounded by
/// <see cref="TenantLimits.MaxPromptArtifactVersions"/>.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TenantPromptArtifacts(
    [property: Id(0)] ImmutableDictionary<string, ImmutableList<PromptArtifactInfo>> Artifacts,
    [property: Id(1)] ImmutableDictionary<string, int> LastVersions)
{
    public TenantPromptArtifacts() : this(
        ImmutableDictionary.Create<string, ImmutableList<PromptArtifactInfo>>(StringComparer.Ordinal),
        ImmutableDictionary.Create<string, int>(StringComparer.Ordinal))
    {
    }

    public int VersionCount => Artifacts.Values.Sum(v => v.Count);
    public long Bytes => Artifacts.Values.Sum(v => v.Sum(a => a.Bytes));
}

/// <summary>
/// A tenant's prompt artifacts (key: tenant id). An upload is checked on an accelerator silo against the model it
/// names (<see cref="IPromptArtifactCheckGrain"/>) before it is copied to its versioned blob and recorded; the
/// catalogue is written after the blob, so a listed version always has its content. A version a prompt configuration
/// references is not deleted.
/// </summary>
public sealed class PromptArtifactsGrain(
    [PersistentState("prompt-artifacts", GrainStorageNames.Tenants)] IPersistentState<TenantPromptArtifacts> state,
    PromptArtifactStore store,
    IOptions<TenantLimits> limits,
    TimeProvider clock,
    ILogger<PromptArtifactsGrain> log) : Grain, IPromptArtifactsGrain
{
    private DurableRecord<TenantPromptArtifacts> _record = null!;

    private string TenantId => this.GetPrimaryKeyString();
    private TenantPromptArtifacts Catalog => _record.Value;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        _record = new DurableRecord<TenantPromptArtifacts>(state, "tenant's prompt artifacts", log);
        return Task.CompletedTask;
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != TenantId) return 0;
        var cleared = await TenantData.ClearAsync(state);
        DeactivateOnIdle();
        return cleared;
    }

    public async Task<PromptArtifactInfo> AddVersionAsync(string name, string model, StagedPromptArtifact staged)
    {
        ArgumentNullException.ThrowIfNull(staged);
        try
        {
            if (!Identifiers.IsValidName(name)) throw new TaptRequestException("name: use 1-64 letters, digits, '.', '_' and '-'");
            if (!Identifiers.IsValidName(model)) throw new TaptRequestException("model: the name of a model in the cluster's catalog is required");
            // A training job resumed after its silo died asks again for the version it may already have added.
            if (staged.TrainingJobId is { } job && Catalog.Artifacts.GetValueOrDefault(name)?.FirstOrDefault(a => a.TrainingJobId == job) is { } made) return made;
            var l = limits.Value;
            if (Catalog.VersionCount >= l.MaxPromptArtifactVersions)
                throw new TaptStorageQuotaException($"a tenant keeps at most {l.MaxPromptArtifactVersions} prompt artifact versions: delete old versions first");
            if (Catalog.Bytes + staged.Length > l.MaxPromptArtifactBytes)
                throw new TaptStorageQuotaException($"this artifact ({staged.Length} bytes) would take the tenant's prompt artifacts past {l.MaxPromptArtifactBytes} bytes ({Catalog.Bytes} stored): delete old versions first");
            var check = await GrainFactory.GetGrain<IPromptArtifactCheckGrain>(model).CheckStagedAsync(TenantId, name, staged);
            var versions = Catalog.Artifacts.GetValueOrDefault(name) ?? [];
            var number = Math.Max(versions.LastOrDefault()?.Version ?? 0, Catalog.LastVersions.GetValueOrDefault(name)) + 1;
            try
            {
                await store.KeepStagedAsync(TenantId, staged, name, number);
            }
            catch (Exception e) when (e is not TaptRequestException)
            {
                log.LogWarning(e, "Tenant {Tenant}: storing prompt artifact {Name} v{Version} failed", TenantId, name, number);
                throw new TaptStorageUnavailableException($"storage is not answering for prompt artifact '{name}'; nothing was changed, try again shortly");
            }
            var kept = check with
            {
                Name = name,
                Version = number,
                Owner = PromptArtifactInfo.TenantOwner,
                Model = model,
                CreatedAt = clock.GetUtcNow(),
                TrainingJobId = staged.TrainingJobId,
            };
            try
            {
                await _record.WriteAsync(Catalog with
                {
                    Artifacts = Catalog.Artifacts.SetItem(name, versions.Add(kept)),
                    LastVersions = Catalog.LastVersions.SetItem(name, number),
                });
            }
            catch (TaptStorageUnavailableException)
            {
                await DeleteContentAsync(name, number);
                throw;
            }
            log.LogInformation("Tenant {Tenant} stored prompt artifact {Name} v{Version} for model {Model} ({Bytes} bytes)", TenantId, name, number, model, staged.Length);
            return kept;
        }
        finally
        {
            await DeleteStagedAsync(staged.Id);
        }
    }

    public Task<ImmutableArray<PromptArtifactInfo>> ListAsync() =>
        Task.FromResult(Catalog.Artifacts.OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => kv.Value).ToImmutableArray());

    public Task<PromptArtifactInfo> GetAsync(string name, int? version = null)
    {
        var versions = Versions(name);
        return Task.FromResult(version is null ? versions[^1]
            : versions.FirstOrDefault(a => a.Version == version) ?? throw new TaptNotFoundException($"prompt artifact '{name}' has no version {version}"));
    }

    public async Task DeleteAsync(string name, int? version = null)
    {
        var versions = Versions(name);
        var doomed = version is null ? versions : versions.Where(a => a.Version == version).ToImmutableList();
        if (doomed.Count == 0) throw new TaptNotFoundException($"prompt artifact '{name}' has no version {version}");
        var numbers = doomed.Select(a => a.Version).ToHashSet();
        if (await FindReferenceAsync(name, numbers) is { } user)
            throw new TaptConflictException($"prompt artifact '{name}' v{user.PromptArtifactVersion} is used by prompt configuration '{user.Name}' v{user.Version}: delete that configuration version first");
        var kept = versions.RemoveAll(a => numbers.Contains(a.Version));
        await _record.WriteAsync(Catalog with { Artifacts = kept.Count == 0 ? Catalog.Artifacts.Remove(name) : Catalog.Artifacts.SetItem(name, kept) });
        foreach (var a in doomed) await DeleteContentAsync(name, a.Version);
        log.LogInformation("Tenant {Tenant} deleted prompt artifact {Name} {Versions}", TenantId, name, version is null ? "(all versions)" : $"v{version}");
    }

    /// <summary>A prompt configuration version of this tenant that uses one of these versions of the artifact, or null.</summary>
    private async Task<PromptConfiguration?> FindReferenceAsync(string name, HashSet<int> versions)
    {
        var tenant = GrainFactory.GetGrain<ITenantGrain>(TenantId);
        foreach (var latest in await tenant.ListPromptConfigurationsAsync())
            foreach (var number in await tenant.ListPromptConfigurationVersionsAsync(latest.Name))
            {
                var c = number == latest.Version ? latest : await tenant.GetPromptConfigurationVersionAsync(latest.Name, number);
                if (c.UsesTenantArtifact && c.PromptArtifact == name && versions.Contains(c.PromptArtifactVersion!.Value)) return c;
            }
        return null;
    }

    private ImmutableList<PromptArtifactInfo> Versions(string? name) =>
        name is not null && Catalog.Artifacts.TryGetValue(name, out var versions) && versions.Count > 0
            ? versions
            : throw new TaptNotFoundException($"prompt artifact '{name}' not found");

    /// <summary>Deletes a version's blob after the catalogue forgot it (or never recorded it); one left behind is unreachable and only logged.</summary>
    private async Task DeleteContentAsync(string name, int version)
    {
        try
        {
            await store.DeleteAsync(TenantId, name, version);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Tenant {Tenant}: the content of prompt artifact {Name} v{Version} stays in storage", TenantId, name, version);
        }
    }

    private async Task DeleteStagedAsync(string id)
    {
        try
        {
            await store.DeleteStagedAsync(TenantId, id);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Tenant {Tenant}: a staged prompt artifact stays in storage", TenantId);
        }
    }
}
