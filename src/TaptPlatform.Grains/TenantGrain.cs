using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>The durable state of a tenant.</summary>
[GenerateSerializer]
public sealed class TenantState
{
    /// <summary>Vocabulary name → its versions, oldest first.</summary>
    [Id(0)] public Dictionary<string, List<VocabularyVersion>> Vocabularies { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Prompt configuration name → latest version.</summary>
    [Id(1)] public Dictionary<string, PromptConfiguration> PromptConfigurations { get; set; } = new(StringComparer.Ordinal);

    [Id(2)] public List<StoredApiKey> ApiKeys { get; set; } = [];

    [Id(3)] public List<string> Jobs { get; set; } = [];

    /// <summary>Prompt configuration name → its versions, oldest first (the latest is also in <see cref="PromptConfigurations"/>).</summary>
    [Id(4)] public Dictionary<string, List<PromptConfiguration>> PromptConfigurationVersions { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The highest version number ever given, by <c>vocabulary:{name}</c> / <c>prompt:{name}</c>: deleted numbers are not reused.</summary>
    [Id(5)] public Dictionary<string, int> LastVersions { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>An API key as stored: its SHA-256 hash, never the secret.</summary>
[GenerateSerializer]
public sealed class StoredApiKey
{
    [Id(0)] public string KeyId { get; set; } = "";
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public string Sha256 { get; set; } = "";
    [Id(3)] public DateTimeOffset CreatedAt { get; set; }
    [Id(4)] public DateTimeOffset? RevokedAt { get; set; }

    public ApiKeyInfo ToInfo() => new(KeyId, Name, CreatedAt, RevokedAt);
}

/// <summary>
/// A tenant (key: tenant id). Owns the tenant's vocabularies, prompt configurations, API key hashes and job list;
/// creates jobs pinned to copies of the vocabulary version and prompt configuration they use.
/// </summary>
public sealed class TenantGrain(
    [PersistentState("tenant", GrainStorageNames.Tenants)] IPersistentState<TenantState> state,
    TimeProvider clock,
    ApiKeySigner keys,
    ILogger<TenantGrain> log) : Grain, ITenantGrain
{
    public const int MaxVocabularies = 1000;
    public const int MaxVersionsKept = 1000;

    /// <summary>Jobs known to be finished (they never run again): skipped when looking for a version in use.</summary>
    private readonly HashSet<string> _finishedJobs = new(StringComparer.Ordinal);

    private string TenantId => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Identifiers.RequireTenantId(TenantId);
        return Task.CompletedTask;
    }

    public async Task<VocabularyVersion> PutVocabularyAsync(VocabularyDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var name = Identifiers.IsValidName(definition.Name) ? definition.Name : throw new TaptRequestException($"invalid vocabulary name '{definition.Name}'");
        var labels = definition.Labels.IsDefault ? [] : definition.Labels;
        if (labels.Length < 2) throw new TaptRequestException("a vocabulary needs at least two labels");
        if (labels.Length > VocabularyDefinition.MaxLabels) throw new TaptRequestException($"a vocabulary has at most {VocabularyDefinition.MaxLabels} labels");
        if (labels.Any(l => string.IsNullOrWhiteSpace(l.Label) || l.Label.Length > 200 || (l.PromptText?.Length ?? 0) > 500))
            throw new TaptRequestException("labels must be non-empty (at most 200 characters; prompt texts at most 500)");
        if (labels.Select(l => l.Label).Distinct(StringComparer.Ordinal).Count() != labels.Length) throw new TaptRequestException("labels must be distinct");
        var template = string.IsNullOrWhiteSpace(definition.Template) ? VocabularyDefinition.DefaultTemplate : definition.Template;
        if (!template.Contains("{0}", StringComparison.Ordinal) || template.Length > 500) throw new TaptRequestException("the template needs a {0} placeholder for the label");
        try
        {
            _ = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, "x");
        }
        catch (FormatException)
        {
            throw new TaptRequestException("the template is not a valid format string");
        }

        if (!state.State.Vocabularies.TryGetValue(name, out var versions))
        {
            if (state.State.Vocabularies.Count >= MaxVocabularies) throw new TaptRequestException($"a tenant has at most {MaxVocabularies} vocabularies");
            state.State.Vocabularies[name] = versions = [];
        }
        var latest = versions.LastOrDefault();
        if (latest is not null && latest.Template == template && latest.Labels.SequenceEqual(labels)) return latest;
        if (versions.Count >= MaxVersionsKept) throw new TaptRequestException($"vocabulary '{name}' has reached {MaxVersionsKept} versions");
        var created = new VocabularyVersion(TenantId, name, NextVersion("vocabulary:" + name, latest?.Version ?? 0), labels, template, clock.GetUtcNow());
        versions.Add(created);
        await state.WriteStateAsync();
        log.LogInformation("Tenant {Tenant} stored vocabulary {Name} v{Version}", TenantId, name, created.Version);
        return created;
    }

    public Task<VocabularyVersion> GetVocabularyAsync(string name, int? version = null)
    {
        if (name is null || !state.State.Vocabularies.TryGetValue(name, out var versions) || versions.Count == 0)
            throw new TaptNotFoundException($"vocabulary '{name}' not found");
        var v = version is null ? versions[^1] : versions.FirstOrDefault(x => x.Version == version)
            ?? throw new TaptNotFoundException($"vocabulary '{name}' has no version {version}");
        return Task.FromResult(v);
    }

    public Task<ImmutableArray<VocabularySummary>> ListVocabulariesAsync() =>
        Task.FromResult(state.State.Vocabularies
            .Where(kv => kv.Value.Count > 0)
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new VocabularySummary(kv.Key, kv.Value[^1].Version, kv.Value[^1].Labels.Length))
            .ToImmutableArray());

    public async Task<PromptConfiguration> PutPromptConfigurationAsync(PromptConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        configuration.Validate();
        var previous = state.State.PromptConfigurations.GetValueOrDefault(configuration.Name);
        if (previous is not null && previous with { Version = 0 } == configuration with { Version = 0 }) return previous;
        var stored = configuration with { Version = NextVersion("prompt:" + configuration.Name, previous?.Version ?? 0) };
        PromptVersions(configuration.Name).Add(stored);
        state.State.PromptConfigurations[configuration.Name] = stored;
        await state.WriteStateAsync();
        return stored;
    }

    public Task<PromptConfiguration> GetPromptConfigurationAsync(string name) =>
        name is not null && state.State.PromptConfigurations.TryGetValue(name, out var c)
            ? Task.FromResult(c)
            : throw new TaptNotFoundException($"prompt configuration '{name}' not found");

    public async Task<ApiKeyIssued> CreateApiKeyAsync(string name)
    {
        Identifiers.RequireName(name, "API key");
        if (state.State.ApiKeys.Count(k => k.RevokedAt is null) >= 100) throw new TaptRequestException("a tenant has at most 100 live API keys");
        var keyId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var secret = keys.Mint(TenantId, keyId);
        state.State.ApiKeys.Add(new StoredApiKey { KeyId = keyId, Name = name, Sha256 = Hash(secret), CreatedAt = clock.GetUtcNow() });
        await state.WriteStateAsync();
        return new ApiKeyIssued(keyId, name, secret);
    }

    public Task<ApiKeyInfo?> ValidateApiKeyAsync(string secret)
    {
        var parsed = ApiKeySecrets.Parse(secret);
        if (parsed is not { } p || p.TenantId != TenantId) return Task.FromResult<ApiKeyInfo?>(null);
        var hash = Convert.FromHexString(Hash(secret));
        foreach (var k in state.State.ApiKeys)
        {
            if (k.KeyId != p.KeyId || k.RevokedAt is not null) continue;
            if (CryptographicOperations.FixedTimeEquals(hash, Convert.FromHexString(k.Sha256))) return Task.FromResult<ApiKeyInfo?>(k.ToInfo());
        }
        return Task.FromResult<ApiKeyInfo?>(null);
    }

    public async Task RevokeApiKeyAsync(string keyId)
    {
        var k = state.State.ApiKeys.FirstOrDefault(x => x.KeyId == keyId) ?? throw new TaptNotFoundException($"API key '{keyId}' not found");
        if (k.RevokedAt is not null) return;
        k.RevokedAt = clock.GetUtcNow();
        await state.WriteStateAsync();
    }

    public Task<ImmutableArray<ApiKeyInfo>> ListApiKeysAsync() =>
        Task.FromResult(state.State.ApiKeys.Select(k => k.ToInfo()).ToImmutableArray());

    public async Task<JobStatus> CreateJobAsync(JobRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var vocabulary = await GetVocabularyAsync(request.Vocabulary, request.VocabularyVersion);
        var configuration = await GetPromptConfigurationAsync(request.PromptConfiguration);
        if (request.Name is { Length: > 200 }) throw new TaptRequestException("job names have at most 200 characters");
        var jobId = Identifiers.NewJobId();
        var definition = new JobDefinition(TenantId, jobId, request.Name, vocabulary, configuration, request.Seed, clock.GetUtcNow());
        // Record the id first: a job grain that exists is always listed by its tenant.
        state.State.Jobs.Add(jobId);
        await state.WriteStateAsync();
        return await GrainFactory.GetGrain<IJobGrain>(jobId).CreateAsync(definition);
    }

    public Task<ImmutableArray<string>> ListJobsAsync() => Task.FromResult(state.State.Jobs.ToImmutableArray());

    public Task<ImmutableArray<int>> ListVocabularyVersionsAsync(string name) =>
        name is not null && state.State.Vocabularies.TryGetValue(name, out var versions) && versions.Count > 0
            ? Task.FromResult(versions.Select(v => v.Version).ToImmutableArray())
            : throw new TaptNotFoundException($"vocabulary '{name}' not found");

    public async Task DeleteVocabularyAsync(string name, int? version = null)
    {
        if (name is null || !state.State.Vocabularies.TryGetValue(name, out var versions) || versions.Count == 0)
            throw new TaptNotFoundException($"vocabulary '{name}' not found");
        var doomed = version is null ? versions.ToList() : versions.Where(v => v.Version == version).ToList();
        if (doomed.Count == 0) throw new TaptNotFoundException($"vocabulary '{name}' has no version {version}");
        var numbers = doomed.Select(v => v.Version).ToHashSet();
        if (await FindUnfinishedJobAsync(s => s.Vocabulary == name && numbers.Contains(s.VocabularyVersion)) is { } user)
            throw new TaptConflictException($"vocabulary '{name}' v{user.VocabularyVersion} is used by unfinished job '{user.JobId}': cancel the job or wait until it finishes");
        RememberVersion("vocabulary:" + name, versions[^1].Version);
        versions.RemoveAll(v => numbers.Contains(v.Version));
        if (versions.Count == 0) state.State.Vocabularies.Remove(name);
        await state.WriteStateAsync();
        log.LogInformation("Tenant {Tenant} deleted vocabulary {Name} {Versions}", TenantId, name, version is null ? "(all versions)" : $"v{version}");
    }

    public Task<ImmutableArray<PromptConfiguration>> ListPromptConfigurationsAsync() =>
        Task.FromResult(state.State.PromptConfigurations.Values.OrderBy(c => c.Name, StringComparer.Ordinal).ToImmutableArray());

    public Task<PromptConfiguration> GetPromptConfigurationVersionAsync(string name, int version) =>
        name is not null && state.State.PromptConfigurations.ContainsKey(name) && PromptVersions(name).FirstOrDefault(c => c.Version == version) is { } c
            ? Task.FromResult(c)
            : throw new TaptNotFoundException($"prompt configuration '{name}' has no version {version}");

    public Task<ImmutableArray<int>> ListPromptConfigurationVersionsAsync(string name) =>
        name is not null && state.State.PromptConfigurations.ContainsKey(name)
            ? Task.FromResult(PromptVersions(name).Select(c => c.Version).ToImmutableArray())
            : throw new TaptNotFoundException($"prompt configuration '{name}' not found");

    public async Task DeletePromptConfigurationAsync(string name, int? version = null)
    {
        if (name is null || !state.State.PromptConfigurations.TryGetValue(name, out var latest))
            throw new TaptNotFoundException($"prompt configuration '{name}' not found");
        var versions = PromptVersions(name);
        var doomed = version is null ? versions.ToList() : versions.Where(c => c.Version == version).ToList();
        if (doomed.Count == 0) throw new TaptNotFoundException($"prompt configuration '{name}' has no version {version}");
        var numbers = doomed.Select(c => c.Version).ToHashSet();
        if (await FindUnfinishedJobAsync(s => s.PromptConfiguration == name && numbers.Contains(s.PromptConfigurationVersion)) is { } user)
            throw new TaptConflictException($"prompt configuration '{name}' v{user.PromptConfigurationVersion} is used by unfinished job '{user.JobId}': cancel the job or wait until it finishes");
        RememberVersion("prompt:" + name, latest.Version);
        versions.RemoveAll(c => numbers.Contains(c.Version));
        if (versions.Count == 0)
        {
            state.State.PromptConfigurations.Remove(name);
            state.State.PromptConfigurationVersions.Remove(name);
        }
        else
        {
            state.State.PromptConfigurations[name] = versions[^1];
        }
        await state.WriteStateAsync();
        log.LogInformation("Tenant {Tenant} deleted prompt configuration {Name} {Versions}", TenantId, name, version is null ? "(all versions)" : $"v{version}");
    }

    /// <summary>The stored versions of a prompt configuration (state written before versions were kept holds only the latest).</summary>
    private List<PromptConfiguration> PromptVersions(string name)
    {
        if (!state.State.PromptConfigurationVersions.TryGetValue(name, out var list))
        {
            list = state.State.PromptConfigurations.TryGetValue(name, out var latest) ? [latest] : [];
            state.State.PromptConfigurationVersions[name] = list;
        }
        return list;
    }

    /// <summary>The next version number for <paramref name="key"/>: above both the latest kept and any deleted one.</summary>
    private int NextVersion(string key, int latest)
    {
        var next = Math.Max(latest, state.State.LastVersions.GetValueOrDefault(key)) + 1;
        state.State.LastVersions[key] = next;
        return next;
    }

    /// <summary>Remembers that <paramref name="version"/> was given for <paramref name="key"/> (before it is deleted).</summary>
    private void RememberVersion(string key, int version) =>
        state.State.LastVersions[key] = Math.Max(version, state.State.LastVersions.GetValueOrDefault(key));

    /// <summary>The first open or running job of this tenant whose status matches (this grain is not reentrant: no job is created meanwhile).</summary>
    private async Task<JobStatus?> FindUnfinishedJobAsync(Func<JobStatus, bool> uses)
    {
        foreach (var jobId in state.State.Jobs)
        {
            if (_finishedJobs.Contains(jobId)) continue;
            JobStatus status;
            try
            {
                status = await GrainFactory.GetGrain<IJobGrain>(jobId).GetStatusAsync(TenantId);
            }
            catch (TaptNotFoundException)
            {
                continue;   // listed before its grain was created, and never created
            }
            if (status.State is JobState.Completed or JobState.Cancelled)
            {
                _finishedJobs.Add(jobId);
                continue;
            }
            if (uses(status)) return status;
        }
        return null;
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
