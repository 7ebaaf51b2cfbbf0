using System.Collections.Immutable;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Grains.Tests;

/// <summary>Verdict histories and the audit trail in blob storage: append blobs, concurrent writers, reading back.</summary>
[Collection(PlatformCollection.Name)]
public sealed class AuditStorageTests(PlatformFixture platform)
{
    [Fact]
    public async Task Concurrent_verdicts_on_one_image_get_distinct_revisions_and_the_listing_shows_the_last()
    {
        var service = new BlobServiceClient(platform.Storage.ConnectionString);
        var reviews = new ReviewStore(new TenantContainers(service));
        var tenantId = PlatformFixture.NewTenant("verdicts");
        var jobId = Identifiers.NewJobId();
        var now = DateTimeOffset.UtcNow;
        var verdicts = Enumerable.Range(0, 12).Select(i => Verdicts.All[i % 3]).ToArray();
        var written = await Task.WhenAll(verdicts.Select((v, i) => reviews.AppendAsync(tenantId, jobId, 7, v, $"note {i}", $"key{i}", now)));
        Assert.Equal(Enumerable.Range(1, 12), written.Select(w => w.Revision).Order());

        var history = await reviews.HistoryAsync(tenantId, jobId, 7);
        Assert.Equal(Enumerable.Range(1, 12), history.Select(h => h.Revision));
        Assert.Equal(written.OrderBy(w => w.Revision).Select(w => w.Note), history.Select(h => h.Note));
        var current = (await reviews.CurrentAsync(tenantId))[(jobId, 7)];
        Assert.Equal(12, current.Revision);
        Assert.Equal(history[^1].Verdict, current.Verdict);
        Assert.Equal(history[^1].ReviewedBy, current.ReviewedBy);

        // A reviewer who saw revision 11 is refused; one who saw 12 is not.
        var conflict = await Assert.ThrowsAsync<ReviewConflictException>(() => reviews.AppendAsync(tenantId, jobId, 7, Verdicts.FalseAlarm, null, "late", now, expectedRevision: 11));
        Assert.Equal(12, conflict.CurrentRevision);
        Assert.Equal(13, (await reviews.AppendAsync(tenantId, jobId, 7, Verdicts.FalseAlarm, null, "on-time", now, expectedRevision: 12)).Revision);
        Assert.Empty(await reviews.HistoryAsync(tenantId, jobId, 8));
        Assert.DoesNotContain((jobId, 8), (await reviews.CurrentAsync(tenantId, jobId)).Keys);

        var blob = service.GetBlobContainerClient(TenantContainers.NameOf(tenantId)).GetBlobClient(ReviewStore.BlobName(jobId, 7));
        Assert.Equal(BlobType.Append, (await blob.GetPropertiesAsync()).Value.BlobType);
    }

    [Fact]
    public async Task Concurrent_trail_appends_are_whole_lines_read_back_newest_first_in_pages_and_by_range()
    {
        var service = new BlobServiceClient(platform.Storage.ConnectionString);
        var trail = new AuditTrailStore(new TenantContainers(service));
        var tenantId = PlatformFixture.NewTenant("trail");
        var yesterday = new DateTimeOffset(2026, 3, 9, 23, 59, 0, TimeSpan.Zero);
        var today = yesterday.AddMinutes(2);
        TrailEntry Entry(int i, DateTimeOffset at) => new(Guid.CreateVersion7().ToString("N"), at.AddMilliseconds(i), "job.created", "key1", "POST", "/api/jobs", 201,
            ImmutableDictionary<string, string>.Empty.Add("n", i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Add("text", new string('x', 1000)));
        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => trail.AppendAsync(tenantId, Entry(i, i < 10 ? yesterday : today))));

        var container = service.GetBlobContainerClient(TenantContainers.NameOf(tenantId));
        var names = new List<string>();
        await foreach (var b in container.GetBlobsAsync(new GetBlobsOptions { Prefix = AuditTrailStore.Prefix }))
        {
            Assert.Equal(BlobType.Append, b.Properties.BlobType);
            names.Add(b.Name);
        }
        Assert.Equal(["trail/2026-03-09-000.jsonl", "trail/2026-03-10-000.jsonl"], names);

        var all = new List<(TrailEntry Entry, TrailPosition Position)>();
        await foreach (var e in trail.ReadNewestFirstAsync(tenantId, DateTimeOffset.MinValue, DateTimeOffset.MaxValue)) all.Add(e);
        Assert.Equal(40, all.Count);
        Assert.Equal(Enumerable.Range(0, 40).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), all.Select(e => e.Entry.Target["n"]).Order());
        Assert.True(all.Take(30).All(e => e.Entry.At >= today) && all.Skip(30).All(e => e.Entry.At < today), "newest day first");

        // Going on from any entry's position gives exactly the entries after it.
        var after = all[17].Position;
        var rest = new List<string>();
        await foreach (var e in trail.ReadNewestFirstAsync(tenantId, DateTimeOffset.MinValue, DateTimeOffset.MaxValue, after)) rest.Add(e.Entry.Id);
        Assert.Equal(all.Skip(18).Select(e => e.Entry.Id), rest);

        var yesterdays = new List<TrailEntry>();
        await foreach (var e in trail.ReadOldestFirstAsync(tenantId, yesterday.AddHours(-1), today.AddTicks(-1))) yesterdays.Add(e.Entry);
        Assert.Equal(10, yesterdays.Count);
    }
}
