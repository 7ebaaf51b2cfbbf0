using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Vision.Caching;

namespace TaptPlatform.Grains.Tenants;

/// <summary>A vocabulary version's content as stored: its JSON and that JSON's SHA-256 (what the catalogue keeps).</summary>
public sealed record StoredVocabulary(BinaryData Json, string Sha256)
{
    public static StoredVocabulary Of(VocabularyVersion vocabulary)
    {
        var json = BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(vocabulary, VocabularyStore.Json));
        return new StoredVocabulary(json, Convert.ToHexStringLower(SHA256.HashData(json.ToMemory().Span)));
    }
}

/// <summary>
/// Vocabulary versions as blobs in the tenant's container, <c>vocabularies/{name}/v{version:D6}.json</c>. Contents are
/// checked against the SHA-256 the tenant's catalogue recorded, so a blob that is not the version it names is never used;
/// versions read are kept in a silo-wide LRU bounded in bytes (keyed by that SHA-256, so never stale).
/// </summary>
public sealed class VocabularyStore(TenantContainers containers, long cacheBytes = VocabularyStore.DefaultCacheBytes) : IDisposable
{
    public const long DefaultCacheBytes = 32L * 1024 * 1024;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly BoundedCache<(string Tenant, string Sha256), VocabularyVersion> _read =
        new("tenant-vocabularies", cacheBytes, SizeOf);

    public static string BlobName(string name, int version) =>
        $"vocabularies/{Identifiers.RequireName(name, "vocabulary")}/v{version.ToString("D6", CultureInfo.InvariantCulture)}.json";

    /// <summary>Writes (or overwrites: a number whose catalogue write failed is given again) a version's content.</summary>
    public async Task PutAsync(VocabularyVersion vocabulary, StoredVocabulary content)
    {
        var blob = (await containers.GetAsync(vocabulary.TenantId)).GetBlobClient(BlobName(vocabulary.Name, vocabulary.Version));
        await blob.UploadAsync(content.Json, new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } });
    }

    /// <summary>The version whose content has <paramref name="sha256"/>; <see cref="TaptStorageUnavailableException"/> when it is missing or differs.</summary>
    public async Task<VocabularyVersion> GetAsync(string tenantId, string name, int version, string sha256)
    {
        if (_read.TryRent((tenantId, sha256), out var hit))
        {
            using (hit) return hit.Value;
        }
        var blob = (await containers.GetAsync(tenantId)).GetBlobClient(BlobName(name, version));
        BinaryData json;
        try
        {
            json = (await blob.DownloadContentAsync()).Value.Content;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new TaptStorageUnavailableException($"the content of vocabulary '{name}' v{version} is missing from storage");
        }
        if (Convert.ToHexStringLower(SHA256.HashData(json.ToMemory().Span)) != sha256)
            throw new TaptStorageUnavailableException($"the stored content of vocabulary '{name}' v{version} does not match its catalogue entry");
        var read = json.ToObjectFromJson<VocabularyVersion>(Json);
        if (read is null || read.TenantId != tenantId || read.Name != name || read.Version != version)
            throw new TaptStorageUnavailableException($"the stored content of vocabulary '{name}' v{version} is not that version");
        using (_read.Rent((tenantId, sha256), _ => read)) return read;
    }

    public void Dispose() => _read.Dispose();

    /// <summary>About the bytes its strings take in memory.</summary>
    private static long SizeOf(VocabularyVersion v) =>
        256 + 2L * (v.Name.Length + v.Template.Length + v.Labels.Sum(l => 64 + l.Label.Length + (l.PromptText?.Length ?? 0)));

    /// <summary>Deletes a version's content (already gone is fine).</summary>
    public async Task DeleteAsync(string tenantId, string name, int version) =>
        await (await containers.GetAsync(tenantId)).GetBlobClient(BlobName(name, version)).DeleteIfExistsAsync();
}
