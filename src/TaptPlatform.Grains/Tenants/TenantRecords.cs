using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

// A tenant's truth lives in separate records, each one Azure Table entity whose size its limits bound (the
// TenantRecordSizeTests serialise the largest allowed ones): the keys, so a revocation never shares a write with
// anything a tenant can grow; and the catalogue, an index of names and versions. Vocabulary contents are blobs in the
// tenant's container and jobs are rows of a table, so neither can push a record past the entity cap.

/// <summary>The tenant's API keys (hashes only). Records are immutable: a write swaps the whole value.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantKeys(
    [property: Id(0)] ImmutableList<TenantApiKey> Keys)
{
    /// <summary>No keys (what a tenant without a stored record has).</summary>
    public TenantKeys() : this(ImmutableList<TenantApiKey>.Empty) { }
}

/// <summary>An API key as stored: its SHA-256 hash, never the secret.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantApiKey(
    [property: Id(0)] string KeyId,
    [property: Id(1)] string Name,
    [property: Id(2)] string Sha256,
    [property: Id(3)] DateTimeOffset CreatedAt,
    [property: Id(4)] DateTimeOffset? RevokedAt = null)
{
    public ApiKeyInfo ToInfo() => new(KeyId, Name, CreatedAt, RevokedAt);
}

/// <summary>One stored vocabulary version: its content is the blob <c>vocabularies/{name}/v{version}.json</c>.</summary>
[GenerateSerializer, Immutable]
public sealed record VocabularyEntry(
    [property: Id(0)] int Version,
    [property: Id(1)] int LabelCount,
    [property: Id(2)] long Bytes,
    [property: Id(3)] string Sha256,
    [property: Id(4)] DateTimeOffset CreatedAt);

/// <summary>
/// The tenant's catalogue: vocabulary versions by name (oldest first), prompt configuration versions by name (oldest
/// first; the last is the latest), and the highest version number ever given per <c>vocabulary:{name}</c> /
/// <c>prompt:{name}</c> so deleted numbers are not reused.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TenantCatalog(
    [property: Id(0)] ImmutableDictionary<string, ImmutableList<VocabularyEntry>> Vocabularies,
    [property: Id(1)] ImmutableDictionary<string, ImmutableList<PromptConfiguration>> PromptConfigurations,
    [property: Id(2)] ImmutableDictionary<string, int> LastVersions)
{
    /// <summary>Nothing stored (what a tenant without a stored record has).</summary>
    public TenantCatalog() : this(
        ImmutableDictionary.Create<string, ImmutableList<VocabularyEntry>>(StringComparer.Ordinal),
        ImmutableDictionary.Create<string, ImmutableList<PromptConfiguration>>(StringComparer.Ordinal),
        ImmutableDictionary.Create<string, int>(StringComparer.Ordinal))
    {
    }

    public int VocabularyVersionCount => Vocabularies.Values.Sum(v => v.Count);
    public long VocabularyBytes => Vocabularies.Values.Sum(v => v.Sum(e => e.Bytes));
    public int PromptConfigurationVersionCount => PromptConfigurations.Values.Sum(v => v.Count);

    /// <summary>The next version number for <paramref name="key"/> (above the latest kept and any deleted) and the catalogue that remembers it.</summary>
    public (int Version, TenantCatalog Catalog) NextVersion(string key, int latest)
    {
        var next = Math.Max(latest, LastVersions.GetValueOrDefault(key)) + 1;
        return (next, this with { LastVersions = LastVersions.SetItem(key, next) });
    }

    /// <summary>Remembers that <paramref name="version"/> was given for <paramref name="key"/> (before it is deleted).</summary>
    public TenantCatalog RememberVersion(string key, int version) =>
        this with { LastVersions = LastVersions.SetItem(key, Math.Max(version, LastVersions.GetValueOrDefault(key))) };
}
