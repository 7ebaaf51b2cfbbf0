using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>An auditor's verdicts on a flagged image.</summary>
public static class Verdicts
{
    public const string ConfirmedAttack = "confirmed-attack";
    public const string FalseAlarm = "false-alarm";
    public const string NeedsFollowUp = "needs-follow-up";

    /// <summary>Not a verdict: the filter value and count key of flagged images nobody reviewed yet.</summary>
    public const string Unreviewed = "unreviewed";

    public static readonly ImmutableArray<string> All = [ConfirmedAttack, FalseAlarm, NeedsFollowUp];

    public static bool IsKnown(string? verdict) => verdict is ConfirmedAttack or FalseAlarm or NeedsFollowUp;
}

/// <summary>One recorded verdict: revision 1 is the first review, every change adds the next.</summary>
public sealed record ReviewEntry(int Revision, string Verdict, string? Note, string ReviewedBy, DateTimeOffset ReviewedAt);

/// <summary>The current verdict of a flagged image, as the audit list shows it.</summary>
public sealed record ReviewSummary(string Verdict, int Revision, string ReviewedBy, DateTimeOffset ReviewedAt);

/// <summary>The verdict was changed by someone else since the revision the reviewer saw.</summary>
public sealed class ReviewConflictException(int current) : Exception($"the verdict changed since (now at revision {current}): reload and review again")
{
    public int CurrentRevision { get; } = current;
}

/// <summary>
/// Verdict histories, one append blob per flagged image at <c>reviews/{jobId}/{index:D5}</c> in the tenant's
/// container: a JSON line per verdict, never rewritten. The current verdict is also kept in the blob's metadata, so
/// one listing gives every image's verdict without reading the histories. An append is conditional on the blob not
/// having changed since it was read (its ETag), so two reviewers never get the same revision.
/// </summary>
public sealed class ReviewStore(TenantContainers containers)
{
    public const string Prefix = "reviews/";
    public const int MaxNoteLength = 2000;
    private static readonly JsonSerializerOptions Json = ResultRecords.Json;

    public static string BlobName(string jobId, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return $"{Prefix}{Identifiers.RequireJobId(jobId)}/{index.ToString("D5", CultureInfo.InvariantCulture)}";
    }

    /// <summary>
    /// Appends a verdict; <paramref name="expectedRevision"/> (the revision the reviewer saw, 0: none) makes it fail
    /// with <see cref="ReviewConflictException"/> when someone else reviewed since.
    /// </summary>
    public async Task<ReviewEntry> AppendAsync(string tenantId, string jobId, int index, string verdict, string? note, string reviewedBy,
        DateTimeOffset now, int? expectedRevision = null, CancellationToken ct = default)
    {
        if (!Verdicts.IsKnown(verdict)) throw new ArgumentException($"unknown verdict '{verdict}'");
        var blob = (await containers.GetAsync(tenantId)).GetAppendBlobClient(BlobName(jobId, index));
        await blob.CreateIfNotExistsAsync(new AppendBlobCreateOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/x-ndjson" } }, ct);
        for (var attempt = 0; ; attempt++)
        {
            var properties = (await blob.GetPropertiesAsync(cancellationToken: ct)).Value;
            var current = properties.BlobCommittedBlockCount;   // one block per verdict
            if (expectedRevision is { } expected && expected != current) throw new ReviewConflictException(current);
            var entry = new ReviewEntry(current + 1, verdict, note, reviewedBy, now);
            var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, Json) + "\n");
            try
            {
                using var content = new MemoryStream(line);
                var appended = await blob.AppendBlockAsync(content, new AppendBlobAppendBlockOptions
                {
                    Conditions = new AppendBlobRequestConditions { IfMatch = properties.ETag },
                }, ct);
                await SetCurrentAsync(blob, entry, appended.Value.ETag, ct);
                return entry;
            }
            catch (RequestFailedException e) when (e.Status == 412 && attempt < 64)
            {
                // Another verdict was appended since the read: that one stands, this one follows it (or, when the
                // reviewer named the revision they saw, is refused).
                if (expectedRevision is not null) throw new ReviewConflictException(current + 1);
                await Task.Delay(Random.Shared.Next(1, 10 + attempt * 5), ct);
            }
        }
    }

    /// <summary>Every verdict recorded on the image, oldest first (empty when never reviewed).</summary>
    public async Task<ImmutableArray<ReviewEntry>> HistoryAsync(string tenantId, string jobId, int index, CancellationToken ct = default)
    {
        var blob = (await containers.GetAsync(tenantId)).GetAppendBlobClient(BlobName(jobId, index));
        try
        {
            var download = (await blob.DownloadContentAsync(ct)).Value;
            var entries = Parse(download.Content.ToString());
            // The metadata is set after the append: repair it when a writer stopped in between.
            if (entries.Length > 0 && (!download.Details.Metadata.TryGetValue("revision", out var r) || r != entries[^1].Revision.ToString(CultureInfo.InvariantCulture)))
                await SetCurrentAsync(blob, entries[^1], download.Details.ETag, ct);
            return entries;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }
    }

    /// <summary>The raw history (JSON lines), or null when the image was never reviewed.</summary>
    public async Task<BinaryData?> ReadRawAsync(string tenantId, string jobId, int index, CancellationToken ct = default)
    {
        var blob = (await containers.GetAsync(tenantId)).GetAppendBlobClient(BlobName(jobId, index));
        try
        {
            return (await blob.DownloadContentAsync(ct)).Value.Content;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>The current verdict of every reviewed image of the tenant (of one job when given), by job and index.</summary>
    public async Task<Dictionary<(string JobId, int Index), ReviewSummary>> CurrentAsync(string tenantId, string? jobId = null, CancellationToken ct = default)
    {
        var prefix = jobId is null ? Prefix : $"{Prefix}{Identifiers.RequireJobId(jobId)}/";
        var container = await containers.GetAsync(tenantId);
        var map = new Dictionary<(string, int), ReviewSummary>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix, Traits = BlobTraits.Metadata }, ct))
        {
            var parts = item.Name[Prefix.Length..].Split('/');
            if (parts.Length != 2 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var index)) continue;
            if (ToSummary(item.Metadata) is { } summary) map[(parts[0], index)] = summary;
        }
        return map;
    }

    internal static ImmutableArray<ReviewEntry> Parse(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonSerializer.Deserialize<ReviewEntry>(l, Json)!)];

    private static async Task SetCurrentAsync(AppendBlobClient blob, ReviewEntry entry, ETag etag, CancellationToken ct)
    {
        try
        {
            await blob.SetMetadataAsync(new Dictionary<string, string>
            {
                ["verdict"] = entry.Verdict,
                ["revision"] = entry.Revision.ToString(CultureInfo.InvariantCulture),
                ["reviewedby"] = entry.ReviewedBy,
                ["reviewedat"] = entry.ReviewedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            }, new BlobRequestConditions { IfMatch = etag }, ct);
        }
        catch (RequestFailedException e) when (e.Status == 412)
        {
            // A later verdict was appended since: its writer sets the metadata.
        }
    }

    private static ReviewSummary? ToSummary(IDictionary<string, string>? metadata)
    {
        if (metadata is null || !metadata.TryGetValue("verdict", out var verdict) || !Verdicts.IsKnown(verdict)) return null;
        _ = int.TryParse(metadata.TryGetValue("revision", out var r) ? r : null, NumberStyles.None, CultureInfo.InvariantCulture, out var revision);
        _ = long.TryParse(metadata.TryGetValue("reviewedat", out var at) ? at : null, NumberStyles.None, CultureInfo.InvariantCulture, out var ms);
        return new ReviewSummary(verdict, revision, metadata.TryGetValue("reviewedby", out var by) ? by : "", DateTimeOffset.FromUnixTimeMilliseconds(ms));
    }
}
