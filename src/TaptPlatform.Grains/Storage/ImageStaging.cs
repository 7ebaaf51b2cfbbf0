using System.Globalization;
using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using TaptPlatform.Contracts;
using TaptPlatform.Vision.Imaging;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// Staging blobs of large uploaded images (<c>staging/jobs/{jobId}/{id}</c> in the tenant's container). The gateway
/// streams a large part into one, block by block, hashing it and enforcing the size limit as it goes, so the part is
/// never held whole; the job grain reads it back, stores it as the job's input and deletes it. Whoever ends a staging
/// blob's use deletes it: the grain once it has taken (or refused) the image, the gateway when the upload fails first.
/// </summary>
public sealed class ImageStaging(TenantContainers containers)
{
    /// <summary>The prefix of every staging blob in a tenant's container.</summary>
    public const string Prefix = "staging/";

    /// <summary>Bytes per staged block: the gateway's only buffer for a part (a 20 MiB image is 5 blocks).</summary>
    public const int BlockBytes = 4 * 1024 * 1024;

    /// <summary>The blob of a staged image; the id is 32 lower-case hex digits (nothing else reaches a blob name).</summary>
    public static string BlobName(string jobId, string id)
    {
        if (id is not { Length: 32 } || !id.All(char.IsAsciiHexDigitLower)) throw new TaptRequestException("invalid staged image id");
        return $"{Prefix}jobs/{Identifiers.RequireJobId(jobId)}/{id}";
    }

    /// <summary>
    /// Streams an image into a new staging blob: <paramref name="head"/> (already read) then the rest of
    /// <paramref name="rest"/>. Null when it is longer than <paramref name="maxBytes"/>: then nothing is left behind and
    /// the rest of the stream is skipped. On any failure the blob is deleted before the exception propagates.
    /// </summary>
    public async Task<StagedImage?> StageAsync(string tenantId, string jobId, ReadOnlyMemory<byte> head, Stream rest, long maxBytes, CancellationToken ct)
    {
        var id = Guid.NewGuid().ToString("N");
        return await StageBlobAsync(tenantId, BlobName(jobId, id), head, rest, maxBytes, ct) is { } staged
            ? new StagedImage(id, staged.Length, staged.Sha256)
            : null;
    }

    /// <summary>
    /// Streams <paramref name="head"/> then the rest of <paramref name="rest"/> into the tenant's blob
    /// <paramref name="blobName"/> (a staging name the caller built), as <see cref="StageAsync"/> does for images;
    /// its length and SHA-256, or null (nothing left behind) when longer than <paramref name="maxBytes"/>.
    /// </summary>
    public async Task<(long Length, string Sha256)?> StageBlobAsync(string tenantId, string blobName, ReadOnlyMemory<byte> head, Stream rest, long maxBytes, CancellationToken ct)
    {
        if (!blobName.StartsWith(Prefix, StringComparison.Ordinal)) throw new ArgumentException($"a staging blob's name starts with '{Prefix}'", nameof(blobName));
        var blob = (await containers.GetAsync(tenantId)).GetBlockBlobClient(blobName);
        // An empty blob first: deleting it also deletes blocks staged but never committed.
        await blob.UploadAsync(Stream.Null, new BlobUploadOptions(), ct);
        try
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var blocks = new List<string>();
            var buffer = new byte[Math.Max(BlockBytes, head.Length)];
            long length = 0;
            head.CopyTo(buffer);
            var filled = head.Length;
            while (true)
            {
                var end = false;
                while (filled < buffer.Length && !end)
                {
                    var n = await rest.ReadAsync(buffer.AsMemory(filled), ct);
                    filled += n;
                    end = n == 0;
                }
                length += filled;
                if (length > maxBytes)
                {
                    await DeleteAsync(blob);
                    await DrainAsync(rest, buffer, ct);
                    return null;
                }
                if (filled > 0)
                {
                    sha.AppendData(buffer, 0, filled);
                    var blockId = Convert.ToBase64String(BitConverter.GetBytes(blocks.Count));
                    using (var block = new MemoryStream(buffer, 0, filled, writable: false))
                        await blob.StageBlockAsync(blockId, block, cancellationToken: ct);
                    blocks.Add(blockId);
                    filled = 0;
                }
                if (end) break;
            }
            await blob.CommitBlockListAsync(blocks, new CommitBlockListOptions(), ct);
            return (length, Convert.ToHexStringLower(sha.GetHashAndReset()));
        }
        catch
        {
            await DeleteAsync(blob);
            throw;
        }
    }

    /// <summary>
    /// The staged image's bytes, read into one array of its declared length; a rejection (the reason as the intake
    /// words it) when it is too large for the upload limits, missing, or not what the gateway declared.
    /// </summary>
    public async Task<(byte[]? Content, string? Rejection)> ReadAsync(string tenantId, string jobId, StagedImage staged, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(staged);
        try
        {
            ImageProbe.CheckByteSize(staged.Length, ImageLimits.Upload);
        }
        catch (ImageRejectedException e)
        {
            return (null, $"{e.Reason}: {e.Message}");
        }
        var blob = (await containers.GetAsync(tenantId)).GetBlockBlobClient(BlobName(jobId, staged.Id));
        try
        {
            using var download = (await blob.DownloadStreamingAsync(cancellationToken: ct)).Value;
            if (download.Details.ContentLength != staged.Length)
                return (null, Mismatch($"is {download.Details.ContentLength} bytes, not the {staged.Length} bytes uploaded"));
            var content = new byte[staged.Length];
            await download.Content.ReadExactlyAsync(content, ct);
            return Convert.ToHexStringLower(SHA256.HashData(content)) == staged.Sha256 ? (content, null)
                : (null, Mismatch("does not have the SHA-256 of the bytes uploaded"));
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return (null, "Missing: the staged image is no longer in storage (upload it again)");
        }
    }

    /// <summary>Deletes staging blobs of a job (those already gone are fine).</summary>
    public async Task DeleteAsync(string tenantId, string jobId, IEnumerable<string> ids)
    {
        var container = await containers.GetAsync(tenantId);
        await Task.WhenAll(ids.Select(id => DeleteAsync(container.GetBlockBlobClient(BlobName(jobId, id)))));
    }

    private static async Task DeleteAsync(BlockBlobClient blob) =>
        await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: CancellationToken.None);

    private static async Task DrainAsync(Stream rest, byte[] buffer, CancellationToken ct)
    {
        while (await rest.ReadAsync(buffer, ct) > 0)
        {
        }
    }

    private static string Mismatch(string what) => string.Create(CultureInfo.InvariantCulture, $"Corrupt: the staged image {what} (upload it again)");
}
