using System.Globalization;
using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// Tenants' prompt artifacts as blobs in their containers: kept versions at <c>prompts/{name}/v{version:D6}.safetensors</c>,
/// uploads being checked at <c>staging/prompts/{id}</c>. Names are built from validated parts only.
/// </summary>
public sealed class PromptArtifactStore(TenantContainers containers)
{
    public const string ContentType = "application/octet-stream";

    /// <summary>A staging blob's name; the id is 32 lower-case hex digits.</summary>
    public static string StagingBlobName(string id) =>
        id is { Length: 32 } && id.All(char.IsAsciiHexDigitLower) ? $"{ImageStaging.Prefix}prompts/{id}" : throw new TaptRequestException("invalid staged artifact id");

    public static string BlobName(string name, int version)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        return $"prompts/{Identifiers.RequireName(name, "prompt artifact")}/v{version.ToString("D6", CultureInfo.InvariantCulture)}.safetensors";
    }

    /// <summary>Writes a staged upload's content to <paramref name="destination"/>; <see cref="TaptRequestException"/> when it is gone.</summary>
    public async Task ReadStagedAsync(string tenantId, StagedPromptArtifact staged, Stream destination, CancellationToken ct = default)
    {
        var blob = (await containers.GetAsync(tenantId)).GetBlobClient(StagingBlobName(staged.Id));
        try
        {
            await blob.DownloadToAsync(destination, ct);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new TaptRequestException("the uploaded artifact is no longer in staging: upload it again");
        }
    }

    /// <summary>
    /// Copies a staged upload to its kept name, hashing it on the way: <see cref="TaptRequestException"/> (and nothing
    /// kept) when it is not the content the gateway staged.
    /// </summary>
    public async Task KeepStagedAsync(string tenantId, StagedPromptArtifact staged, string name, int version, CancellationToken ct = default)
    {
        var container = await containers.GetAsync(tenantId);
        var target = container.GetBlobClient(BlobName(name, version));
        Stream source;
        try
        {
            source = (await container.GetBlobClient(StagingBlobName(staged.Id)).DownloadStreamingAsync(cancellationToken: ct)).Value.Content;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new TaptRequestException("the uploaded artifact is no longer in staging: upload it again");
        }
        await using (source)
        {
            using var sha = SHA256.Create();
            await using var hashing = new CryptoStream(source, sha, CryptoStreamMode.Read, leaveOpen: true);
            await target.UploadAsync(hashing, new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = ContentType } }, ct);
            if (Convert.ToHexStringLower(sha.Hash!) != staged.Sha256)
            {
                await target.DeleteIfExistsAsync(cancellationToken: CancellationToken.None);
                throw new TaptRequestException("the staged artifact changed after it was uploaded: upload it again");
            }
        }
    }

    /// <summary>A kept version's content as a stream read as it is consumed, or null when it is gone.</summary>
    public async Task<(Stream Content, long Length)?> OpenReadAsync(string tenantId, string name, int version, CancellationToken ct = default)
    {
        var blob = (await containers.GetAsync(tenantId)).GetBlobClient(BlobName(name, version));
        try
        {
            var r = (await blob.DownloadStreamingAsync(cancellationToken: ct)).Value;
            return (r.Content, r.Details.ContentLength);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>Writes a kept version's content to <paramref name="destination"/>; <see cref="TuningFailedException"/> when it is gone.</summary>
    public async Task DownloadAsync(TenantArtifactReference artifact, Stream destination, CancellationToken ct = default)
    {
        var blob = (await containers.GetAsync(artifact.TenantId)).GetBlobClient(BlobName(artifact.Name, artifact.Version));
        try
        {
            await blob.DownloadToAsync(destination, ct);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new TuningFailedException($"prompt artifact '{artifact.DisplayName}' is no longer in storage");
        }
    }

    public async Task DeleteAsync(string tenantId, string name, int version) =>
        await (await containers.GetAsync(tenantId)).GetBlobClient(BlobName(name, version)).DeleteIfExistsAsync();

    public async Task DeleteStagedAsync(string tenantId, string id) =>
        await (await containers.GetAsync(tenantId)).GetBlobClient(StagingBlobName(id)).DeleteIfExistsAsync();
}
