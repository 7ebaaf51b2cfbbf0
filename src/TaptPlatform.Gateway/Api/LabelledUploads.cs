using System.Collections.Immutable;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// Uploads of labelled images (multipart/form-data, one file part per image, the part's name its label), as evaluations
/// and prompt training jobs take them: parts read one by one (large ones, and every part once
/// <see cref="GatewayOptions.UploadChunkBytes"/> are held, streamed into staging blobs), then handed to the grain in chunks.
/// </summary>
internal static class LabelledUploads
{
    /// <summary>
    /// A whole upload: reads the parts, asks <paramref name="refuse"/> about their count before anything is stored (the
    /// job's own limit: a problem refuses the upload whole), hands them to the grain through <paramref name="add"/> in
    /// chunks, and discards the staged parts the grain did not take, whatever happened.
    /// </summary>
    public static async Task<Results<Ok<AddImagesReceipt>, ProblemHttpResult>> UploadAsync(HttpContext c, ImageStaging staging, ILogger log, string tenantId, string jobId,
        GatewayOptions o, Func<int, ProblemHttpResult?> refuse, Func<ImmutableArray<EvaluationImage>, Task<AddImagesReceipt>> add)
    {
        var images = new List<EvaluationImage>();
        try
        {
            if (await ReadAsync(c, staging, tenantId, jobId, o, images) is { } refused) return refused;
            if (refuse(images.Count) is { } tooMany) return tooMany;
            var receipt = await AddInChunksAsync(add, images, o);
            if (receipt.AcceptedIndices.IsEmpty)
                return Problems.Result(422, ErrorCodes.ImagesRejected, "No image accepted", "none of the images was accepted: each part must be a supported image named by a label of the vocabulary",
                    new Dictionary<string, object?> { ["rejected"] = receipt.Rejected, ["totalImages"] = receipt.TotalImages });
            return TypedResults.Ok(receipt);
        }
        finally
        {
            // What the grain did not take: the upload was refused or failed part-way.
            await UploadParts.DiscardAsync(staging, tenantId, jobId, images.Select(i => i.Staged), log);
        }
    }

    /// <summary>
    /// Reads the file parts into <paramref name="images"/> (the caller discards the staged ones the grain never took);
    /// a problem (400, 413) when the request is not such an upload or breaks a limit, else null.
    /// </summary>
    private static async Task<ProblemHttpResult?> ReadAsync(HttpContext c, ImageStaging staging, string tenantId, string jobId, GatewayOptions o, List<EvaluationImage> images)
    {
        if (!c.Request.HasFormContentType) return Problems.Invalid("send multipart/form-data with one file part per image, named by its label");
        if (!MediaTypeHeaderValue.TryParse(c.Request.ContentType, out var mediaType) || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            return Problems.Invalid("no image parts in the upload");
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary) || boundary.Length > 200) return Problems.Invalid("the multipart boundary is missing or too long", ErrorCodes.MalformedRequest);
        var reader = new MultipartReader(boundary, c.Request.Body) { HeadersLengthLimit = 16 * 1024, HeadersCountLimit = 16 };
        long held = 0;
        MultipartSection? section;
        while ((section = await reader.ReadNextSectionAsync(c.RequestAborted)) is not null)
        {
            if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.IsFileDisposition())
            {
                await section.Body.DrainAsync(c.RequestAborted);   // plain form fields are ignored
                continue;
            }
            if (images.Count >= o.MaxImagesPerRequest)
                return Problems.Result(413, ErrorCodes.TooManyImages, "Too many images", $"one request carries at most {o.MaxImagesPerRequest} images: send the rest in another request");
            var name = Path.GetFileName(UploadParts.FileName(disposition));
            var label = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
            // Small parts are held until the caller's checks; past UploadChunkBytes held, every part is staged.
            var threshold = Math.Min(o.StagingThresholdBytes, Math.Max(0, o.UploadChunkBytes - held));
            if (await UploadParts.ReadAsync(staging, tenantId, jobId, section.Body, threshold, o.MaxImageBytes, c.RequestAborted) is not { } part)
                return Problems.Result(413, ErrorCodes.ImageTooLarge, "Image too large", $"image '{name}' is larger than {o.MaxImageBytes} bytes");
            held += part.Content.Length;
            images.Add(new EvaluationImage(name, label, part.Content) { Staged = part.Staged });
        }
        return images.Count == 0 ? Problems.Invalid("no image parts in the upload") : null;
    }

    /// <summary>
    /// Hands the images over in chunks (<see cref="GatewayOptions.UploadChunkImages"/> images or
    /// <see cref="GatewayOptions.UploadChunkBytes"/> bytes, staged ones at their length: the grain reads them) and joins
    /// the receipts in order. Images the grain answered for leave <paramref name="images"/>: it deleted their staging blobs.
    /// </summary>
    private static async Task<AddImagesReceipt> AddInChunksAsync(Func<ImmutableArray<EvaluationImage>, Task<AddImagesReceipt>> add, List<EvaluationImage> images, GatewayOptions o)
    {
        var parts = ImmutableArray.CreateBuilder<OfferedImage>();
        var total = 0;
        while (images.Count > 0)
        {
            var count = 0;
            long bytes = 0;
            while (count < images.Count && count < o.UploadChunkImages && (count == 0 || bytes < o.UploadChunkBytes))
            {
                var image = images[count++];
                bytes += image.Staged?.Length ?? image.Content.Length;
            }
            var receipt = await add([.. images.GetRange(0, count)]);
            images.RemoveRange(0, count);
            parts.AddRange(receipt.Parts);
            total = receipt.TotalImages;
        }
        return AddImagesReceipt.Of(parts.ToImmutable(), total);
    }
}
