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
    ILogger<TenantGrain> log) : Grain, ITenantGrain
{
    public const int MaxVocabularies = 1000;
    public const int MaxVersionsKept = 1000;

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
        var created = new VocabularyVersion(TenantId, name, (latest?.Version ?? 0) + 1, labels, template, clock.GetUtcNow());
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
        var stored = configuration with { Version = (previous?.Version ?? 0) + 1 };
        if (previous is not null && previous with { Version = 0 } == configuration with { Version = 0 }) return previous;
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
        var secret = $"tapt.{TenantId}.{keyId}.{Base64Url(RandomNumberGenerator.GetBytes(32))}";
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

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
