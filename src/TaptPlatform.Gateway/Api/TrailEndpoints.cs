using Microsoft.AspNetCore.Http.HttpResults;
using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Audit;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Api;

/// <summary>
/// The tenant's audit trail, read-only: a page at a time (newest first) or exported whole. There is no route that
/// writes, changes or deletes an entry; entries are appended by <see cref="TrailRecording"/> alone.
/// </summary>
public static class TrailEndpoints
{
    public const int MaxPage = 500;

    internal static void Map(RouteGroupBuilder api)
    {
        var trail = api.MapGroup("/trail").RequireAuthorization(TaptAuth.TenantPolicy).WithTags("Audit trail");
        trail.MapGet("/", Page).WithSummary("Who did what and when, newest first: since, until, kind (comma-separated; 'key' matches every key.* kind), limit (≤ 500), cursor (nextCursor of the previous page).");
        trail.MapGet("/export", Export).Trail(TrailKinds.TrailExported)
            .WithSummary("The trail for a time range (since, until, kind), oldest first, as JSON lines (format=jsonl, the default) or CSV (format=csv).");
    }

    private static async Task<Results<Ok<TrailPage>, ProblemHttpResult>> Page(HttpContext c, AuditTrailStore store,
        DateTimeOffset? since, DateTimeOffset? until, string? kind, int? limit, string? cursor)
    {
        if (Kinds(kind) is not { } kinds) return Problems.Invalid("kind: comma-separated kinds of letters, digits, '.' and '-'");
        if (since > until) return Problems.Invalid("since must not be after until");
        TrailPosition? after = null;
        if (cursor is not null && (after = DecodeCursor(cursor)) is null) return Problems.Invalid("cursor: use the nextCursor of a previous page");
        var take = Math.Clamp(limit ?? 100, 1, MaxPage);
        var items = new List<TrailEntry>();
        TrailPosition? last = null;
        var more = false;
        await foreach (var (entry, position) in store.ReadNewestFirstAsync(c.User.TenantId(), since ?? DateTimeOffset.MinValue, until ?? DateTimeOffset.MaxValue, after, c.RequestAborted))
        {
            if (!Matches(entry.Kind, kinds)) continue;
            if (items.Count == take) { more = true; break; }
            items.Add(entry);
            last = position;
        }
        return TypedResults.Ok(new TrailPage([.. items], more && last is { } l ? EncodeCursor(l) : null));
    }

    private static async Task Export(HttpContext c, AuditTrailStore store, DateTimeOffset? since, DateTimeOffset? until, string? kind, string? format)
    {
        if (Kinds(kind) is not { } kinds) throw new TaptRequestException("kind: comma-separated kinds of letters, digits, '.' and '-'");
        var csv = string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase);
        if (!csv && format is not null && !string.Equals(format, "jsonl", StringComparison.OrdinalIgnoreCase))
            throw new TaptRequestException("format: use jsonl or csv");
        var tenantId = c.User.TenantId();
        c.Response.ContentType = csv ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8";
        c.Response.Headers.ContentDisposition = $"attachment; filename=\"trail-{tenantId}.{(csv ? "csv" : "jsonl")}\"";
        await using var writer = new StreamWriter(c.Response.Body, new UTF8Encoding(false), 64 * 1024);
        if (csv) await writer.WriteLineAsync(CsvHeader);
        await foreach (var (entry, line) in store.ReadOldestFirstAsync(tenantId, since ?? DateTimeOffset.MinValue, until ?? DateTimeOffset.MaxValue, c.RequestAborted))
        {
            if (!Matches(entry.Kind, kinds)) continue;
            await writer.WriteLineAsync(csv ? CsvLine(entry) : line);
        }
        await writer.FlushAsync(c.RequestAborted);
    }

    public const string CsvHeader = "id,at,kind,actor,method,path,status,target";

    public static string CsvLine(TrailEntry e) => string.Join(',',
        e.Id, e.At.ToString("O", CultureInfo.InvariantCulture), JobEndpoints.Csv(e.Kind), JobEndpoints.Csv(e.Actor), e.Method, JobEndpoints.Csv(e.Path),
        e.Status.ToString(CultureInfo.InvariantCulture),
        JobEndpoints.Csv(string.Join(' ', e.Target.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))));

    /// <summary>The kind filter: empty (every kind) when not given, null when malformed.</summary>
    internal static ImmutableArray<string>? Kinds(string? kind)
    {
        if (string.IsNullOrEmpty(kind)) return ImmutableArray<string>.Empty;
        var kinds = kind.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (kinds.Length is 0 or > 20 || !kinds.All(TrailKinds.IsValidFilter)) return null;
        return ImmutableArray.Create(kinds);
    }

    internal static bool Matches(string kind, ImmutableArray<string> kinds) =>
        kinds.IsEmpty || kinds.Any(k => kind == k || kind.StartsWith(k + ".", StringComparison.Ordinal));

    private static string EncodeCursor(TrailPosition p) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{p.Blob}|{p.Line.ToString(CultureInfo.InvariantCulture)}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static TrailPosition? DecodeCursor(string cursor)
    {
        if (cursor.Length > 200) return null;
        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=')));
            var bar = text.LastIndexOf('|');
            if (bar < 0 || !text.StartsWith(AuditTrailStore.Prefix, StringComparison.Ordinal)) return null;
            return int.TryParse(text.AsSpan(bar + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var line)
                ? new TrailPosition(text[..bar], line) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
