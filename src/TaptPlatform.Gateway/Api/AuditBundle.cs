using System.Buffers;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// The audit bundle of a time range, streamed as a zip as it is read from storage (never whole in memory): every
/// flagged image of the range (<c>images/</c>), its audit record (<c>records/</c>) and verdict history
/// (<c>reviews/</c>), the range's trail entries (<c>trail.jsonl</c>), an <c>index.csv</c> with a row per image, and
/// <c>manifest.json</c>. The zip's length is not known up front: <c>X-Bundle-Estimated-Bytes</c> (the stored sizes of
/// what goes in) lets a client show progress.
/// </summary>
public static class AuditBundle
{
    public const string EstimatedBytesHeader = "X-Bundle-Estimated-Bytes";
    public const string ImagesHeader = "X-Bundle-Images";
    public const string IndexHeader = "job_id,job_name,index,image_name,completed_at,reasons,label,confidence,baseline_label,prompt_configuration,vocabulary,verdict,revision,reviewed_by,reviewed_at,image_file,record_file,review_file";

    private sealed record Item(JobStatus Job, ImageResult Result, ResultView View);

    internal static async Task Export(HttpContext c, IGrainFactory g, JobLabels labels, IArtifactStore store, ReviewStore reviews, AuditTrailStore trail,
        TimeProvider clock, DateTimeOffset? since, DateTimeOffset? until, string? jobId)
    {
        var now = clock.GetUtcNow();
        if (TenantResults.Range(since, until, now) is not { } range) throw new TaptRequestException("since/until: a range of at most 366 days, since before until");
        var tenantId = c.User.TenantId();
        var ct = c.RequestAborted;
        var (items, estimate) = await CollectAsync(c, g, labels, store, tenantId, jobId, range.Since, range.Until);
        var current = await reviews.CurrentAsync(tenantId, ct: ct);

        c.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        c.Response.ContentType = "application/zip";
        c.Response.Headers.ContentDisposition = $"attachment; filename=\"audit-{tenantId}-{range.Since.UtcDateTime:yyyyMMdd}-{range.Until.UtcDateTime:yyyyMMdd}.zip\"";
        c.Response.Headers[EstimatedBytesHeader] = estimate.ToString(CultureInfo.InvariantCulture);
        c.Response.Headers[ImagesHeader] = items.Count.ToString(CultureInfo.InvariantCulture);

        await using var sink = new DrainedStream(c.Response.Body);
        var zip = await ZipArchive.CreateAsync(sink, ZipArchiveMode.Create, true, null, ct);
        await using (zip)
        {
            var counts = await WriteEntriesAsync(zip, sink, items, current, store, reviews, trail, tenantId, range.Since, range.Until, ct);
            var manifest = JsonSerializer.SerializeToUtf8Bytes(new
            {
                format = "tapt-audit-bundle",
                formatVersion = 1,
                tenantId,
                since = range.Since,
                until = range.Until,
                jobId,
                generatedAt = now,
                flaggedImages = items.Count,
                reviewedImages = counts.Reviewed,
                trailEntries = counts.TrailEntries,
            }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true });
            await CopyAsync(zip, sink, "manifest.json", new MemoryStream(manifest), CompressionLevel.Fastest, ct);
        }
        await sink.DrainAsync(ct);   // the central directory, written as the archive closed
    }

    /// <summary>Every image's files and index row, then the trail and the index; how many images had a verdict and how many trail entries went in.</summary>
    private static async Task<(int Reviewed, int TrailEntries)> WriteEntriesAsync(ZipArchive zip, DrainedStream sink, List<Item> items,
        Dictionary<(string JobId, int Index), ReviewSummary> current, IArtifactStore store, ReviewStore reviews, AuditTrailStore trail,
        string tenantId, DateTimeOffset since, DateTimeOffset until, CancellationToken ct)
    {
        var index = new StringBuilder(IndexHeader).Append('\n');
        var reviewed = 0;
        foreach (var item in items)
        {
            var (job, r, view) = item;
            var stem = $"{job.JobId}/{r.Index.ToString("D5", CultureInfo.InvariantCulture)}";
            var imageFile = $"images/{stem}-{SafeName(r.Name)}";
            var recordFile = $"records/{stem}.json";
            var reviewFile = "";
            if (await store.OpenReadAsync(tenantId, job.JobId, ArtifactKinds.Inputs, r.Index, ct) is { } image)
                await using (image.Content) await CopyAsync(zip, sink, imageFile, image.Content, CompressionLevel.NoCompression, ct);   // already compressed
            else imageFile = "";
            if (await store.GetAsync(tenantId, job.JobId, ArtifactKinds.Audit, r.Index, ct) is { } record)
                await CopyAsync(zip, sink, recordFile, record.ToStream(), CompressionLevel.Fastest, ct);
            else recordFile = "";
            if (await reviews.ReadRawAsync(tenantId, job.JobId, r.Index, ct) is { } history)
            {
                reviewFile = $"reviews/{stem}.jsonl";
                await CopyAsync(zip, sink, reviewFile, history.ToStream(), CompressionLevel.Fastest, ct);
            }
            var review = current.GetValueOrDefault((job.JobId, r.Index));
            if (review is not null) reviewed++;
            index.AppendJoin(',', JobEndpoints.Csv(job.JobId), JobEndpoints.Csv(job.Name), r.Index.ToString(CultureInfo.InvariantCulture), JobEndpoints.Csv(r.Name),
                r.CompletedAt.ToString("O", CultureInfo.InvariantCulture), JobEndpoints.Csv(string.Join(' ', view.Reasons)), JobEndpoints.Csv(view.Label),
                r.Confidence.ToString("0.######", CultureInfo.InvariantCulture), JobEndpoints.Csv(view.BaselineLabel), JobEndpoints.Csv(job.PromptConfiguration),
                JobEndpoints.Csv(job.Vocabulary), review?.Verdict ?? Verdicts.Unreviewed, review?.Revision.ToString(CultureInfo.InvariantCulture) ?? "",
                JobEndpoints.Csv(review?.ReviewedBy), review?.ReviewedAt.ToString("O", CultureInfo.InvariantCulture) ?? "",
                JobEndpoints.Csv(imageFile), JobEndpoints.Csv(recordFile), JobEndpoints.Csv(reviewFile)).Append('\n');
        }

        var entries = 0;
        var trailEntry = zip.CreateEntry("trail.jsonl", CompressionLevel.Fastest);
        await using (var trailStream = await trailEntry.OpenAsync(ct))
        {
            await foreach (var (_, line) in trail.ReadOldestFirstAsync(tenantId, since, until, ct))
            {
                await trailStream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"), ct);
                await sink.DrainAsync(ct);
                entries++;
            }
        }
        await sink.DrainAsync(ct);
        await CopyAsync(zip, sink, "index.csv", new MemoryStream(Encoding.UTF8.GetBytes(index.ToString())), CompressionLevel.Fastest, ct);
        return (reviewed, entries);
    }

    /// <summary>The flagged images of the range, oldest first, and the stored bytes of what the bundle will hold.</summary>
    private static async Task<(List<Item> Items, long EstimatedBytes)> CollectAsync(HttpContext c, IGrainFactory g, JobLabels labels, IArtifactStore store,
        string tenantId, string? jobId, DateTimeOffset since, DateTimeOffset until)
    {
        var items = new List<Item>();
        long bytes = 0;
        await foreach (var job in TenantResults.JobsAsync(g, tenantId, jobId, c.RequestAborted))
        {
            if (job.Counts.Flagged == 0 || job.CreatedAt > until || job.FinishedAt < since) continue;
            var names = await labels.ForAsync(tenantId, job);
            var before = items.Count;
            await foreach (var r in TenantResults.ResultsAsync(g, tenantId, job.JobId, c.RequestAborted))
                if (r.Flagged && r.CompletedAt >= since && r.CompletedAt <= until) items.Add(new Item(job, r, ResultView.From(r, names)));
            if (items.Count == before) continue;
            var wanted = items.Skip(before).Select(i => i.Result.Index).ToHashSet();
            foreach (var a in await store.ListAsync(tenantId, job.JobId, c.RequestAborted))
                if (a.Kind is ArtifactKinds.Inputs or ArtifactKinds.Audit && int.TryParse(a.Name.AsSpan(a.Name.LastIndexOf('/') + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var i) && wanted.Contains(i))
                    bytes += a.Size;
        }
        items.Sort((a, b) => a.Result.CompletedAt.CompareTo(b.Result.CompletedAt) is var d and not 0 ? d
            : string.CompareOrdinal(a.Job.JobId, b.Job.JobId) is var e and not 0 ? e : a.Result.Index.CompareTo(b.Result.Index));
        return (items, bytes);
    }

    /// <summary>One entry, read from <paramref name="content"/> and sent on to the response a chunk at a time.</summary>
    private static async Task CopyAsync(ZipArchive zip, DrainedStream sink, string name, Stream content, CompressionLevel level, CancellationToken ct)
    {
        var entry = zip.CreateEntry(name, level);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            await using (var target = await entry.OpenAsync(ct))
            {
                int read;
                while ((read = await content.ReadAsync(buffer, ct)) > 0)
                {
                    await target.WriteAsync(buffer.AsMemory(0, read), ct);
                    await sink.DrainAsync(ct);
                }
            }
            await sink.DrainAsync(ct);   // the entry's data descriptor
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>An image's name as a file name: letters, digits, '.', '_' and '-' only, at most 80 characters.</summary>
    internal static string SafeName(string name)
    {
        var safe = new string([.. name.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '_')]).TrimStart('.');
        return safe.Length == 0 ? "image" : safe.Length > 80 ? safe[^80..] : safe;
    }
}
