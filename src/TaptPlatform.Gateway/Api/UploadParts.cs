using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>One file part of an upload: its bytes, or (large) empty bytes and the staging blob it was streamed into.</summary>
internal readonly record struct UploadedPart(byte[] Content, StagedImage? Staged)
{
    public long Length => Staged?.Length ?? Content.Length;
}

/// <summary>
/// Reading the file parts of a multipart upload without holding a large one whole: a part is buffered up to a threshold
/// and past it streamed into a staging blob (<see cref="ImageStaging"/>), so neither the gateway's memory nor a grain
/// message ever carries it. Shared by job and evaluation uploads.
/// </summary>
internal static class UploadParts
{
    /// <summary>The file name a part declares (filename* first), or "".</summary>
    public static string FileName(ContentDispositionHeaderValue disposition) =>
        HeaderUtilities.RemoveQuotes(disposition.FileNameStar).Value is { Length: > 0 } star ? star
            : HeaderUtilities.RemoveQuotes(disposition.FileName).Value ?? "";

    /// <summary>
    /// A part: its bytes while it is at most <paramref name="stagingThreshold"/> bytes long, past that streamed into a
    /// staging blob of <paramref name="jobId"/>; null when it is longer than <paramref name="maxBytes"/> (the rest is
    /// skipped and nothing is left in staging).
    /// </summary>
    public static async Task<UploadedPart?> ReadAsync(ImageStaging staging, string tenantId, string jobId, Stream body,
        long stagingThreshold, long maxBytes, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > maxBytes)
            {
                await body.DrainAsync(ct);
                return null;
            }
            buffer.Write(chunk, 0, n);
            if (buffer.Length > stagingThreshold)
                return await staging.StageAsync(tenantId, jobId, buffer.GetBuffer().AsMemory(0, (int)buffer.Length), body, maxBytes, ct) is { } staged
                    ? new UploadedPart([], staged)
                    : null;
        }
        return new UploadedPart(buffer.ToArray(), null);
    }

    /// <summary>
    /// Deletes the staging blobs of parts never handed to their grain (the upload was refused or failed part-way); a
    /// failure is logged, not thrown, so the response stands.
    /// </summary>
    public static async Task DiscardAsync(ImageStaging staging, string tenantId, string jobId, IEnumerable<StagedImage?> parts, ILogger log)
    {
        var ids = parts.OfType<StagedImage>().Select(s => s.Id).ToList();
        if (ids.Count == 0) return;
        try
        {
            await staging.DeleteAsync(tenantId, jobId, ids);
        }
        catch (Exception e)
        {
            log.LogWarning(e, "Upload to {Job}: {Count} staging blob(s) could not be deleted", jobId, ids.Count);
        }
    }
}
