using System.Collections.Immutable;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Storage;

/// <summary>
/// One thing someone did to a tenant's data: who (<see cref="Actor"/>: a key id, or <c>operator</c>), what
/// (<see cref="Kind"/>, e.g. <c>job.created</c>), on what (<see cref="Target"/>: job id, image index, key id, name,
/// version, as they apply) and when.
/// </summary>
public sealed record TrailEntry(
    string Id,
    DateTimeOffset At,
    string Kind,
    string Actor,
    string Method,
    string Path,
    int Status,
    ImmutableDictionary<string, string> Target);

/// <summary>Where a trail entry sits: its day blob and line, so a page can go on from it.</summary>
public readonly record struct TrailPosition(string Blob, int Line);

/// <summary>
/// The tenant's append-only audit trail: append blobs <c>trail/{yyyy-MM-dd}-{part:D3}.jsonl</c> in the tenant's
/// container, one JSON line per entry, appended as one block (so entries from several gateways never interleave and
/// none is rewritten). A day's blob holds up to 50,000 entries (the append blob's block limit); further ones go to
/// the next part. Nothing here rewrites or deletes a blob: only the tenant's erasure removes the container.
/// </summary>
public sealed class AuditTrailStore(TenantContainers containers)
{
    public const string Prefix = "trail/";
    private static readonly JsonSerializerOptions Json = ResultRecords.Json;

    public static string BlobName(DateTimeOffset day, int part) =>
        $"{Prefix}{day.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}-{part.ToString("D3", CultureInfo.InvariantCulture)}.jsonl";

    public async Task AppendAsync(string tenantId, TrailEntry entry, CancellationToken ct = default)
    {
        var container = await containers.GetAsync(tenantId);
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, Json) + "\n");
        for (var part = 0; part < 1000; part++)
        {
            var blob = container.GetAppendBlobClient(BlobName(entry.At, part));
            for (var created = false; ; created = true)
            {
                try
                {
                    using var content = new MemoryStream(line);
                    await blob.AppendBlockAsync(content, cancellationToken: ct);
                    return;
                }
                catch (RequestFailedException e) when (e.Status == 404 && !created)
                {
                    await blob.CreateIfNotExistsAsync(new AppendBlobCreateOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/x-ndjson" } }, ct);
                }
                catch (RequestFailedException e) when (e.Status == 409 && e.ErrorCode is "BlockCountExceedsLimit" or "MaxBlobSizeConditionNotMet")
                {
                    break;   // this part is full: the next one
                }
            }
        }
        throw new InvalidOperationException("the trail of one day is full");
    }

    /// <summary>
    /// Entries from <paramref name="since"/> to <paramref name="until"/>, newest first, starting after
    /// <paramref name="after"/> (the position of the last entry of the previous page), with their positions.
    /// </summary>
    public async IAsyncEnumerable<(TrailEntry Entry, TrailPosition Position)> ReadNewestFirstAsync(string tenantId, DateTimeOffset since, DateTimeOffset until,
        TrailPosition? after = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var name in (await BlobsAsync(tenantId, since, until, ct)).OrderDescending(StringComparer.Ordinal))
        {
            if (after is { } a && string.CompareOrdinal(name, a.Blob) > 0) continue;
            var lines = await ReadLinesAsync(tenantId, name, ct);
            var start = after is { } b && b.Blob == name ? b.Line - 1 : lines.Length - 1;
            for (var i = start; i >= 0; i--)
            {
                var entry = JsonSerializer.Deserialize<TrailEntry>(lines[i], Json)!;
                if (entry.At >= since && entry.At <= until) yield return (entry, new TrailPosition(name, i));
            }
        }
    }

    /// <summary>Entries from <paramref name="since"/> to <paramref name="until"/>, oldest first, as the stored JSON lines.</summary>
    public async IAsyncEnumerable<(TrailEntry Entry, string Line)> ReadOldestFirstAsync(string tenantId, DateTimeOffset since, DateTimeOffset until,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var name in (await BlobsAsync(tenantId, since, until, ct)).Order(StringComparer.Ordinal))
            foreach (var line in await ReadLinesAsync(tenantId, name, ct))
            {
                var entry = JsonSerializer.Deserialize<TrailEntry>(line, Json)!;
                if (entry.At >= since && entry.At <= until) yield return (entry, line);
            }
    }

    /// <summary>The day blobs that may hold entries of the range (a day's blobs hold that UTC day's entries).</summary>
    private async Task<List<string>> BlobsAsync(string tenantId, DateTimeOffset since, DateTimeOffset until, CancellationToken ct)
    {
        var first = BlobName(since, 0)[..(Prefix.Length + 10)];
        var last = BlobName(until, 0)[..(Prefix.Length + 10)];
        var container = await containers.GetAsync(tenantId);
        var names = new List<string>();
        await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = Prefix }, ct))
        {
            var day = item.Name.Length >= Prefix.Length + 10 ? item.Name[..(Prefix.Length + 10)] : "";
            if (string.CompareOrdinal(day, first) >= 0 && string.CompareOrdinal(day, last) <= 0) names.Add(item.Name);
        }
        return names;
    }

    private async Task<string[]> ReadLinesAsync(string tenantId, string name, CancellationToken ct)
    {
        var blob = (await containers.GetAsync(tenantId)).GetAppendBlobClient(name);
        var text = (await blob.DownloadContentAsync(ct)).Value.Content.ToString();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
