using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Artifacts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// A tenant (key: tenant id). Owns the tenant's vocabularies, prompt configurations, API key hashes and job list,
/// each in its own home (<see cref="TenantRecords"/>): a write goes to storage before memory changes, so what any
/// caller sees is what storage holds, and a key's revocation never waits on (or fails with) the tenant's other data.
/// Creates jobs pinned to copies of the vocabulary version and prompt configuration they use; a job's end unpins them.
/// </summary>
public sealed class TenantGrain(
    [PersistentState("keys", GrainStorageNames.Tenants)] IPersistentState<TenantKeys> keyState,
    [PersistentState("catalog", GrainStorageNames.Tenants)] IPersistentState<TenantCatalog> catalogState,
    [PersistentState("tenant", GrainStorageNames.Tenants)] IPersistentState<TenantState> legacy,
    VocabularyStore vocabularyStore,
    TenantJobIndex jobIndex,
    IOptions<TenantLimits> limits,
    ApiKeySigner signer,
    TimeProvider clock,
    ILogger<TenantGrain> log) : Grain, ITenantGrain
{
    private DurableRecord<TenantKeys> _keys = null!;
    private DurableRecord<TenantCatalog> _catalog = null!;

    private string TenantId => this.GetPrimaryKeyString();
    private TenantLimits Limits => limits.Value;
    private TenantCatalog Catalog => _catalog.Value;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        _keys = new DurableRecord<TenantKeys>(keyState, "tenant's keys", log);
        _catalog = new DurableRecord<TenantCatalog>(catalogState, "tenant's catalogue", log);
        if (legacy.RecordExists)
            await new TenantMigration(TenantId, GrainFactory, vocabularyStore, jobIndex, log).MoveAsync(legacy, _keys, _catalog);
    }

    // ---- keys ------------------------------------------------------------------------------------------------------

    public async Task<ApiKeyIssued> CreateApiKeyAsync(string name)
    {
        await RefuseWhileErasedAsync();
        var (keys, issued) = TenantKeyRing.Create(_keys.Value, TenantId, name, Limits, signer, clock.GetUtcNow());
        await _keys.WriteAsync(keys);
        return issued;
    }

    public Task<ApiKeyInfo?> ValidateApiKeyAsync(string secret) =>
        Task.FromResult(TenantKeyRing.Validate(_keys.Value, TenantId, secret)?.ToInfo());

    public async Task RevokeApiKeyAsync(string keyId)
    {
        if (TenantKeyRing.Revoke(_keys.Value, keyId, clock.GetUtcNow()) is { } revoked) await _keys.WriteAsync(revoked);
        await TellGatewaysAsync(new KeyRevocation(TenantId, keyId));
    }

    /// <summary>
    /// Tells every gateway to forget the revoked keys now, after they were recorded. If the notice cannot be sent, the
    /// gateways still stop accepting them within their key cache's duration.
    /// </summary>
    private async Task TellGatewaysAsync(KeyRevocation revocation)
    {
        try
        {
            await GrainFactory.GetGrain<IKeyRevocationsGrain>(0).PublishAsync(revocation);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Tenant {Tenant}: the gateways were not told of the revoked key(s); they forget them within their key cache's duration", TenantId);
        }
    }

    public Task<ImmutableArray<ApiKeyInfo>> ListApiKeysAsync() =>
        Task.FromResult(_keys.Value.Keys.Select(k => k.ToInfo()).ToImmutableArray());

    // ---- erasure ---------------------------------------------------------------------------------------------------

    public async Task<ImmutableArray<string>> RevokeAllKeysAsync()
    {
        var keys = _keys.Value;
        var now = clock.GetUtcNow();
        if (keys.Keys.Any(k => k.RevokedAt is null))
            await _keys.WriteAsync(new TenantKeys(keys.Keys.Select(k => k.RevokedAt is null ? k with { RevokedAt = now } : k).ToImmutableList()));
        log.LogInformation("Tenant {Tenant}: every key revoked for its erasure", TenantId);
        await TellGatewaysAsync(new KeyRevocation(TenantId, null));
        return keys.Keys.Select(k => k.KeyId).ToImmutableArray();
    }

    public async Task<int> EraseTenantDataAsync(string tenantId)
    {
        if (tenantId != TenantId) return 0;
        var cleared = await TenantData.ClearAsync(keyState, catalogState, legacy);
        DeactivateOnIdle();
        return cleared;
    }

    /// <summary>A tenant being erased (or erased) takes no new keys and no new jobs: nothing may outlive its erasure.</summary>
    private async Task RefuseWhileErasedAsync()
    {
        var erasure = await GrainFactory.GetGrain<ITenantErasureGrain>(TenantId).GetAsync();
        if (erasure.Phase != ErasurePhase.None)
            throw new TaptConflictException($"tenant '{TenantId}' {(erasure.Phase == ErasurePhase.Done ? "was erased" : "is being erased")}");
    }

    // ---- vocabularies ----------------------------------------------------------------------------------------------

    public async Task<VocabularyVersion> PutVocabularyAsync(VocabularyDefinition definition)
    {
        var (name, labels, template) = VocabularyRules.Validate(definition);
        var versions = Catalog.Vocabularies.GetValueOrDefault(name) ?? [];
        if (versions.Count == 0 && Catalog.Vocabularies.Count >= Limits.MaxVocabularies)
            throw new TaptStorageQuotaException($"a tenant has at most {Limits.MaxVocabularies} vocabularies: delete one first");
        if (versions.Count > 0)
        {
            var latest = await ReadVocabularyAsync(name, versions[^1]);
            if (latest.Template == template && latest.Labels.SequenceEqual(labels)) return latest;
        }
        if (Catalog.VocabularyVersionCount >= Limits.MaxVocabularyVersions)
            throw new TaptStorageQuotaException($"a tenant keeps at most {Limits.MaxVocabularyVersions} vocabulary versions: delete old versions first");
        var (number, catalog) = Catalog.NextVersion("vocabulary:" + name, versions.LastOrDefault()?.Version ?? 0);
        var created = new VocabularyVersion(TenantId, name, number, labels, template, clock.GetUtcNow());
        var content = StoredVocabulary.Of(created);
        var bytes = content.Json.ToMemory().Length;
        if (Catalog.VocabularyBytes + bytes > Limits.MaxVocabularyBytes)
            throw new TaptStorageQuotaException(
                $"this version ({bytes} bytes) would take the tenant's vocabularies past {Limits.MaxVocabularyBytes} bytes ({Catalog.VocabularyBytes} stored): delete old versions first");
        await Store(() => vocabularyStore.PutAsync(created, content), $"vocabulary '{name}'");
        var entry = new VocabularyEntry(number, labels.Length, bytes, content.Sha256, created.CreatedAt);
        await _catalog.WriteAsync(catalog with { Vocabularies = catalog.Vocabularies.SetItem(name, versions.Add(entry)) });
        log.LogInformation("Tenant {Tenant} stored vocabulary {Name} v{Version}", TenantId, name, number);
        return created;
    }

    public async Task<VocabularyVersion> GetVocabularyAsync(string name, int? version = null)
    {
        var versions = VocabularyVersions(name);
        var entry = version is null ? versions[^1] : versions.FirstOrDefault(x => x.Version == version)
            ?? throw new TaptNotFoundException($"vocabulary '{name}' has no version {version}");
        return await ReadVocabularyAsync(name, entry);
    }

    public Task<ImmutableArray<VocabularySummary>> ListVocabulariesAsync() =>
        Task.FromResult(Catalog.Vocabularies
            .Where(kv => kv.Value.Count > 0)
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new VocabularySummary(kv.Key, kv.Value[^1].Version, kv.Value[^1].LabelCount))
            .ToImmutableArray());

    public Task<ImmutableArray<int>> ListVocabularyVersionsAsync(string name) =>
        Task.FromResult(VocabularyVersions(name).Select(v => v.Version).ToImmutableArray());

    public async Task DeleteVocabularyAsync(string name, int? version = null)
    {
        var versions = VocabularyVersions(name);
        var doomed = version is null ? versions : versions.Where(v => v.Version == version).ToImmutableList();
        if (doomed.Count == 0) throw new TaptNotFoundException($"vocabulary '{name}' has no version {version}");
        var numbers = doomed.Select(v => v.Version).ToHashSet();
        if (await FindUnfinishedJobAsync(r => r.Pins(name, numbers, null, null)) is { } user)
            throw new TaptConflictException($"vocabulary '{name}' v{user.VocabularyVersion} is used by unfinished job '{user.JobId}': cancel the job or wait until it finishes");
        var kept = versions.RemoveAll(v => numbers.Contains(v.Version));
        var catalog = Catalog.RememberVersion("vocabulary:" + name, versions[^1].Version);
        await _catalog.WriteAsync(catalog with { Vocabularies = kept.Count == 0 ? catalog.Vocabularies.Remove(name) : catalog.Vocabularies.SetItem(name, kept) });
        foreach (var v in doomed) await DeleteContentAsync(name, v.Version);
        log.LogInformation("Tenant {Tenant} deleted vocabulary {Name} {Versions}", TenantId, name, version is null ? "(all versions)" : $"v{version}");
    }

    // ---- prompt configurations -------------------------------------------------------------------------------------

    public async Task<PromptConfiguration> PutPromptConfigurationAsync(PromptConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        configuration.Validate();
        configuration = await PromptArtifactReferences.ResolveAsync(GrainFactory.GetGrain<IPromptArtifactsGrain>(TenantId), configuration);
        var versions = Catalog.PromptConfigurations.GetValueOrDefault(configuration.Name) ?? [];
        var previous = versions.LastOrDefault();
        if (previous is not null && previous with { Version = 0 } == configuration with { Version = 0 }) return previous;
        if (Catalog.PromptConfigurationVersionCount >= Limits.MaxPromptConfigurationVersions)
            throw new TaptStorageQuotaException($"a tenant keeps at most {Limits.MaxPromptConfigurationVersions} prompt configuration versions: delete old versions first");
        var (number, catalog) = Catalog.NextVersion("prompt:" + configuration.Name, previous?.Version ?? 0);
        var stored = configuration with { Version = number };
        await _catalog.WriteAsync(catalog with { PromptConfigurations = catalog.PromptConfigurations.SetItem(configuration.Name, versions.Add(stored)) });
        return stored;
    }

    public Task<PromptConfiguration> GetPromptConfigurationAsync(string name) => Task.FromResult(PromptVersions(name)[^1]);

    public Task<ImmutableArray<PromptConfiguration>> ListPromptConfigurationsAsync() =>
        Task.FromResult(Catalog.PromptConfigurations.Values.Where(v => v.Count > 0).Select(v => v[^1])
            .OrderBy(c => c.Name, StringComparer.Ordinal).ToImmutableArray());

    public Task<PromptConfiguration> GetPromptConfigurationVersionAsync(string name, int version) =>
        PromptVersions(name).FirstOrDefault(c => c.Version == version) is { } c
            ? Task.FromResult(c)
            : throw new TaptNotFoundException($"prompt configuration '{name}' has no version {version}");

    public Task<ImmutableArray<int>> ListPromptConfigurationVersionsAsync(string name) =>
        Task.FromResult(PromptVersions(name).Select(c => c.Version).ToImmutableArray());

    public async Task DeletePromptConfigurationAsync(string name, int? version = null)
    {
        var versions = PromptVersions(name);
        var doomed = version is null ? versions : versions.Where(c => c.Version == version).ToImmutableList();
        if (doomed.Count == 0) throw new TaptNotFoundException($"prompt configuration '{name}' has no version {version}");
        var numbers = doomed.Select(c => c.Version).ToHashSet();
        if (await FindUnfinishedJobAsync(r => r.Pins(null, null, name, numbers)) is { } user)
            throw new TaptConflictException($"prompt configuration '{name}' v{user.PromptConfigurationVersion} is used by unfinished job '{user.JobId}': cancel the job or wait until it finishes");
        var kept = versions.RemoveAll(c => numbers.Contains(c.Version));
        var catalog = Catalog.RememberVersion("prompt:" + name, versions[^1].Version);
        await _catalog.WriteAsync(catalog with
        {
            PromptConfigurations = kept.Count == 0 ? catalog.PromptConfigurations.Remove(name) : catalog.PromptConfigurations.SetItem(name, kept),
        });
        log.LogInformation("Tenant {Tenant} deleted prompt configuration {Name} {Versions}", TenantId, name, version is null ? "(all versions)" : $"v{version}");
    }

    // ---- jobs ------------------------------------------------------------------------------------------------------

    public async Task<JobStatus> CreateJobAsync(JobRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        await RefuseWhileErasedAsync();
        var vocabulary = await GetVocabularyAsync(request.Vocabulary, request.VocabularyVersion);
        var configuration = await GetPromptConfigurationAsync(request.PromptConfiguration);
        if (request.Name is { Length: > 200 }) throw new TaptRequestException("job names have at most 200 characters");
        var definition = new JobDefinition(TenantId, Identifiers.NewJobId(), request.Name, vocabulary, configuration, request.Seed, clock.GetUtcNow());
        // Recorded first: a job grain that exists is always listed by its tenant, and pins what it uses.
        await Store(() => jobIndex.AddAsync(TenantId, TenantJobRow.Of(definition)), "job list");
        await GrainFactory.GetGrain<IRetentionGrain>(TenantId).EnsureScheduledAsync();   // what the job stores will expire
        return await GrainFactory.GetGrain<IJobGrain>(definition.JobId).CreateAsync(definition);
    }

    public async Task<ImmutableArray<string>> ListJobsAsync()
    {
        List<TenantJobRow> rows = [];
        await Store(async () => rows = await jobIndex.ListAsync(TenantId), "job list");
        return rows.Select(r => r.JobId).ToImmutableArray();
    }

    /// <summary>
    /// The first job whose index row still pins what <paramref name="pins"/> matches. Jobs mark their rows ended when
    /// they end; a row that says otherwise is confirmed with its job once (it may have been recorded and never created,
    /// or have ended while its mark could not be written) and corrected.
    /// </summary>
    private async Task<TenantJobRow?> FindUnfinishedJobAsync(Func<TenantJobRow, bool> pins)
    {
        List<TenantJobRow> rows = [];
        await Store(async () => rows = await jobIndex.ListAsync(TenantId, unfinishedOnly: true), "job list");
        foreach (var row in rows.Where(pins))
        {
            JobState? state;
            try
            {
                state = (await GrainFactory.GetGrain<IJobGrain>(row.JobId).GetStatusAsync(TenantId)).State;
            }
            catch (TaptNotFoundException)
            {
                state = null;   // recorded before its grain was created, and never created
            }
            if (state is JobState.Open or JobState.Running) return row;
            await Store(() => jobIndex.MarkEndedAsync(TenantId, row.JobId), "job list");
        }
        return null;
    }

    // ---- parts -----------------------------------------------------------------------------------------------------

    private ImmutableList<VocabularyEntry> VocabularyVersions(string? name) =>
        name is not null && Catalog.Vocabularies.TryGetValue(name, out var versions) && versions.Count > 0
            ? versions
            : throw new TaptNotFoundException($"vocabulary '{name}' not found");

    private ImmutableList<PromptConfiguration> PromptVersions(string? name) =>
        name is not null && Catalog.PromptConfigurations.TryGetValue(name, out var versions) && versions.Count > 0
            ? versions
            : throw new TaptNotFoundException($"prompt configuration '{name}' not found");

    private async Task<VocabularyVersion> ReadVocabularyAsync(string name, VocabularyEntry entry)
    {
        VocabularyVersion? read = null;
        await Store(async () => read = await vocabularyStore.GetAsync(TenantId, name, entry.Version, entry.Sha256), $"vocabulary '{name}'");
        return read!;
    }

    /// <summary>Deletes a version's blob after the catalogue forgot it; one left behind is unreachable and only logged.</summary>
    private async Task DeleteContentAsync(string name, int version)
    {
        try
        {
            await vocabularyStore.DeleteAsync(TenantId, name, version);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Tenant {Tenant}: the content of deleted vocabulary {Name} v{Version} stays in storage", TenantId, name, version);
        }
    }

    /// <summary>Runs a storage call; its failures become <see cref="TaptStorageUnavailableException"/> (the platform's own errors pass).</summary>
    private async Task Store(Func<Task> call, string what)
    {
        try
        {
            await call();
        }
        catch (Exception e) when (e is not (TaptStorageUnavailableException or TaptNotFoundException or TaptRequestException))
        {
            log.LogWarning(e, "Tenant {Tenant}: storage failed for the {What}", TenantId, what);
            throw new TaptStorageUnavailableException($"storage is not answering for the {what}; nothing was changed, try again shortly");
        }
    }
}
