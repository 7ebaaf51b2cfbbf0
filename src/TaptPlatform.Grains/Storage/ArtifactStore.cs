using System.Globalization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>The kinds of artifact a job keeps.</summary>
public static class ArtifactKinds
{
    public const string Inputs = "inputs";
    public const string Results = "results";
    public const string Audit = "audit";
    public const string Adversarial = "adversarial";

    public static bool IsKnown(string kind) => kind is Inputs or Results or Audit or Adversarial;
}

/// <summary>
/// Per-tenant artifact storage. Each tenant has its own container (<c>tenant-{id}</c>); inside it a job's artifacts
/// live under <c>jobs/{jobId}/{kind}/{index:D5}</c>. Every method takes the tenant id and builds the path from
/// validated parts only, so no argument can reach another tenant's container.
/// </summary>
public interface IArtifactStore
{
    /// <summary>Writes (or overwrites) an artifact.</summary>
    Task PutAsync(string tenantId, string jobId, string kind, int index, BinaryData content, string contentType, CancellationToken ct = default);

    /// <summary>Creates an artifact only if it does not exist yet; false when it already existed (the earlier one stays).</summary>
    Task<bool> TryCreateAsync(string tenantId, string jobId, string kind, int index, BinaryData content, string contentType, CancellationToken ct = default);

    /// <summary>The artifact's content, or null when it does not exist.</summary>
    Task<BinaryData?> GetAsync(string tenantId, string jobId, string kind, int index, CancellationToken ct = default);

    /// <summary>
    /// The artifact as a stream read from storage as it is consumed (never whole in memory), with its content type and
    /// length; null when it does not exist. The caller disposes the stream.
    /// </summary>
    Task<(Stream Content, string ContentType, long Length)?> OpenReadAsync(string tenantId, string jobId, string kind, int index, CancellationToken ct = default);

    /// <summary>The indices that have an artifact of this kind.</summary>
    Task<IReadOnlyList<int>> ListIndicesAsync(string tenantId, string jobId, string kind, CancellationToken ct = default);

    /// <summary>Every artifact of a job.</summary>
    Task<IReadOnlyList<ArtifactInfo>> ListAsync(string tenantId, string jobId, CancellationToken ct = default);

    /// <summary>Writes a named artifact <c>jobs/{jobId}/{path}</c> (path: a known kind, then validated segments); createOnly keeps an existing one (returns false).</summary>
    Task<bool> PutFileAsync(string tenantId, string jobId, string path, BinaryData content, string contentType, bool createOnly = false, CancellationToken ct = default);

    /// <summary>A named artifact's content and type, or null.</summary>
    Task<(BinaryData Content, string ContentType)?> GetFileAsync(string tenantId, string jobId, string path, CancellationToken ct = default);

    /// <summary>Deletes a named artifact; false when there was none.</summary>
    Task<bool> DeleteFileAsync(string tenantId, string jobId, string path, CancellationToken ct = default);
}

/// <summary>Azure Blob Storage (or Azurite) implementation of <see cref="IArtifactStore"/>.</summary>
public sealed class BlobArtifactStore(TenantContainers containers) : IArtifactStore
{
    public BlobArtifactStore(BlobServiceClient service) : this(new TenantContainers(service)) { }

    public static string ContainerName(string tenantId) => TenantContainers.NameOf(tenantId);

    public static string BlobName(string jobId, string kind, int index)
    {
        Identifiers.RequireJobId(jobId);
        if (!ArtifactKinds.IsKnown(kind)) throw new ArgumentException($"unknown artifact kind '{kind}'");
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return $"jobs/{jobId}/{kind}/{index.ToString("D5", CultureInfo.InvariantCulture)}";
    }

    /// <summary>
    /// <c>jobs/{jobId}/{path}</c> for a relative path whose first segment is a known kind and whose segments are 1–64 of letters,
    /// digits, '.', '_' and '-' (never "." or "..").
    /// </summary>
    public static string FileName(string jobId, string path)
    {
        var segments = (path ?? "").Split('/');
        if (segments.Length is < 2 or > 6 || !ArtifactKinds.IsKnown(segments[0]) || !segments.All(Identifiers.IsValidName))
            throw new ArgumentException($"invalid artifact path '{path}'");
        return JobPrefix(jobId) + string.Join('/', segments);
    }

    public async Task<bool> PutFileAsync(string tenantId, string jobId, string path, BinaryData content, string contentType, bool createOnly = false, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(FileName(jobId, path));
        try
        {
            await blob.UploadAsync(content, new BlobUploadOptions
            {
                HttpHeaders = new BlobHttpHeaders { ContentType = contentType },
                Conditions = createOnly ? new BlobRequestConditions { IfNoneMatch = ETag.All } : null,
            }, ct);
            return true;
        }
        catch (RequestFailedException e) when (createOnly && e.Status is 409 or 412)
        {
            return false;
        }
    }

    public async Task<(BinaryData Content, string ContentType)?> GetFileAsync(string tenantId, string jobId, string path, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(FileName(jobId, path));
        try
        {
            var r = await blob.DownloadContentAsync(ct);
            return (r.Value.Content, r.Value.Details.ContentType ?? "application/octet-stream");
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task<bool> DeleteFileAsync(string tenantId, string jobId, string path, CancellationToken ct = default) =>
        await (await Container(tenantId)).GetBlobClient(FileName(jobId, path)).DeleteIfExistsAsync(cancellationToken: ct);

    public static string JobPrefix(string jobId) => $"jobs/{Identifiers.RequireJobId(jobId)}/";

    public async Task PutAsync(string tenantId, string jobId, string kind, int index, BinaryData content, string contentType, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(BlobName(jobId, kind, index));
        await blob.UploadAsync(content, new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = contentType } }, ct);
    }

    public async Task<bool> TryCreateAsync(string tenantId, string jobId, string kind, int index, BinaryData content, string contentType, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(BlobName(jobId, kind, index));
        try
        {
            await blob.UploadAsync(content, new BlobUploadOptions
            {
                HttpHeaders = new BlobHttpHeaders { ContentType = contentType },
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            }, ct);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            return false;
        }
    }

    public async Task<BinaryData?> GetAsync(string tenantId, string jobId, string kind, int index, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(BlobName(jobId, kind, index));
        try
        {
            var r = await blob.DownloadContentAsync(ct);
            return r.Value.Content;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task<(Stream Content, string ContentType, long Length)?> OpenReadAsync(string tenantId, string jobId, string kind, int index, CancellationToken ct = default)
    {
        var blob = (await Container(tenantId)).GetBlobClient(BlobName(jobId, kind, index));
        try
        {
            var r = (await blob.DownloadStreamingAsync(cancellationToken: ct)).Value;
            return (r.Content, r.Details.ContentType ?? "application/octet-stream", r.Details.ContentLength);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<int>> ListIndicesAsync(string tenantId, string jobId, string kind, CancellationToken ct = default)
    {
        if (!ArtifactKinds.IsKnown(kind)) throw new ArgumentException($"unknown artifact kind '{kind}'");
        var prefix = JobPrefix(jobId) + kind + "/";
        var container = await Container(tenantId);
        var indices = new List<int>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, ct))
            if (int.TryParse(item.Name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var i)) indices.Add(i);
        return indices;
    }

    public async Task<IReadOnlyList<ArtifactInfo>> ListAsync(string tenantId, string jobId, CancellationToken ct = default)
    {
        var prefix = JobPrefix(jobId);
        var container = await Container(tenantId);
        var list = new List<ArtifactInfo>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, ct))
        {
            var rest = item.Name[prefix.Length..];
            var slash = rest.IndexOf('/');
            list.Add(new ArtifactInfo(slash > 0 ? rest[..slash] : "", item.Name, item.Properties.ContentLength ?? 0));
        }
        return list;
    }

    private Task<BlobContainerClient> Container(string tenantId) => containers.GetAsync(tenantId);
}
