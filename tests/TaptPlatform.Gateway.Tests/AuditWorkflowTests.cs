using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Reviews of flagged images, the verdict-aware audit list, flag trends and audit bundles over HTTP.</summary>
[Collection(GatewayCollection.Name)]
public sealed class AuditWorkflowTests(GatewayFixture gateway)
{
    /// <summary>A tenant whose job flagged every one of six images (a confidence threshold of 1).</summary>
    private async Task<(string TenantId, HttpClient Http, string JobId, List<(string Name, byte[] Bytes)> Images)> FlaggedJobAsync(string prefix)
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync(prefix, minimumConfidence: 1.0, steps: 2, views: 16);
        var jobId = await GatewayFixture.CreateJobAsync(http, "reviewed");
        var images = GatewayFixture.FashionImages(Enumerable.Range(40, 6)).ToList();
        await GatewayFixture.UploadAsync(http, jobId, images);
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal(6, done.GetProperty("counts").GetProperty("flagged").GetInt32());
        return (tenantId, http, jobId, images);
    }

    [Fact]
    public async Task Verdicts_are_recorded_changed_kept_in_history_and_drive_the_list_counts_and_order()
    {
        var (_, http, jobId, _) = await FlaggedJobAsync("review");
        using var _ = http;
        var page = (await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}", GatewayFixture.Json))!;
        Assert.Equal(6, page.Items.Length);
        Assert.Equal(6, page.Verdicts!["unreviewed"]);
        Assert.All(page.Items, i => Assert.Null(i.Review));

        var empty = await http.GetFromJsonAsync<JsonElement>($"/api/audit/{jobId}/2/reviews");
        Assert.Equal(JsonValueKind.Null, empty.GetProperty("current").ValueKind);
        Assert.Equal(0, empty.GetProperty("history").GetArrayLength());

        var first = await http.PostAsJsonAsync($"/api/audit/{jobId}/2/reviews", new { verdict = "confirmed-attack", note = "  perturbation visible in the corner  ", expectedRevision = 0 });
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var firstBody = await first.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, firstBody.GetProperty("current").GetProperty("revision").GetInt32());
        Assert.Equal("perturbation visible in the corner", firstBody.GetProperty("current").GetProperty("note").GetString());

        var changed = await http.PostAsJsonAsync($"/api/audit/{jobId}/2/reviews", new { verdict = "false-alarm", note = "a reflection", expectedRevision = 1 });
        Assert.Equal(HttpStatusCode.Created, changed.StatusCode);
        var stale = await http.PostAsJsonAsync($"/api/audit/{jobId}/2/reviews", new { verdict = "needs-follow-up", expectedRevision = 1 });
        Assert.Equal(HttpStatusCode.Conflict, stale.StatusCode);
        Assert.Equal(2, (await stale.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("currentRevision").GetInt32());
        (await http.PostAsJsonAsync($"/api/audit/{jobId}/4/reviews", new { verdict = "needs-follow-up" })).EnsureSuccessStatusCode();

        var history = await http.GetFromJsonAsync<JsonElement>($"/api/audit/{jobId}/2/reviews");
        Assert.Equal(["confirmed-attack", "false-alarm"], history.GetProperty("history").EnumerateArray().Select(h => h.GetProperty("verdict").GetString()));
        Assert.Equal([1, 2], history.GetProperty("history").EnumerateArray().Select(h => h.GetProperty("revision").GetInt32()));
        Assert.Equal("false-alarm", history.GetProperty("current").GetProperty("verdict").GetString());
        Assert.False(string.IsNullOrEmpty(history.GetProperty("current").GetProperty("reviewedBy").GetString()));

        // Bad input: clear 4xx problems, nothing recorded.
        foreach (var (body, status) in new (object Body, HttpStatusCode Status)[]
        {
            (new { verdict = "maybe" }, HttpStatusCode.BadRequest),
            (new { note = "no verdict" }, HttpStatusCode.BadRequest),
            (new { verdict = "false-alarm", note = new string('x', 2001) }, HttpStatusCode.BadRequest),
            (new { verdict = "false-alarm", note = "bell\u0007" }, HttpStatusCode.BadRequest),
        })
        {
            var refused = await http.PostAsJsonAsync($"/api/audit/{jobId}/2/reviews", body);
            Assert.Equal(status, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsJsonAsync($"/api/audit/{jobId}/99/reviews", new { verdict = "false-alarm" })).StatusCode);
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>($"/api/audit/{jobId}/2/reviews")).GetProperty("history").GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync($"/api/audit?verdict=guilty")).StatusCode);

        // The list: unreviewed first, counts by current verdict, filter by verdict.
        page = (await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}", GatewayFixture.Json))!;
        Assert.Equal(4, page.Verdicts!["unreviewed"]);
        Assert.Equal(1, page.Verdicts["false-alarm"]);
        Assert.Equal(1, page.Verdicts["needs-follow-up"]);
        Assert.Equal(0, page.Verdicts["confirmed-attack"]);
        Assert.All(page.Items.Take(4), i => Assert.Null(i.Review));
        Assert.All(page.Items.Skip(4), i => Assert.NotNull(i.Review));
        var falseAlarms = (await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}&verdict=false-alarm", GatewayFixture.Json))!;
        Assert.Equal(2, Assert.Single(falseAlarms.Items).Result.Index);
        Assert.Equal(2, falseAlarms.Items[0].Review!.Revision);
        var unreviewed = (await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}&verdict=unreviewed", GatewayFixture.Json))!;
        Assert.Equal([0, 1, 3, 5], unreviewed.Items.Select(i => i.Result.Index).Order());

        // Another tenant sees none of it.
        var (_, bobKey) = await gateway.CreateTenantAsync(prefix: "bob");
        using var bob = gateway.WithKey(bobKey);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync($"/api/audit/{jobId}/2/reviews")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.PostAsJsonAsync($"/api/audit/{jobId}/2/reviews", new { verdict = "false-alarm" })).StatusCode);
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>($"/api/audit/{jobId}/2/reviews")).GetProperty("history").GetArrayLength());

        await AssertTrendsAsync(http, jobId);
    }

    /// <summary>Today's bucket of the default configuration with the fashion vocabulary: six flagged, two reviewed.</summary>
    private static async Task AssertTrendsAsync(HttpClient http, string jobId)
    {
        var results = (await http.GetFromJsonAsync<ResultPageView>($"/api/jobs/{jobId}/results", GatewayFixture.Json))!.Items;
        var changed = results.Count(r => r.Prediction != r.BaselinePrediction);
        var trends = await http.GetFromJsonAsync<JsonElement>("/api/audit/trends");
        var series = Assert.Single(trends.GetProperty("series").EnumerateArray());
        Assert.Equal("default", series.GetProperty("promptConfiguration").GetString());
        Assert.Equal("fashion", series.GetProperty("vocabulary").GetString());
        Assert.Equal(31, series.GetProperty("days").GetArrayLength());
        var today = series.GetProperty("days").EnumerateArray().Last(d => d.GetProperty("images").GetInt32() > 0);
        Assert.Equal(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), today.GetProperty("day").GetString());
        Assert.Equal(6, today.GetProperty("images").GetInt32());
        Assert.Equal(6, today.GetProperty("flagged").GetInt32());
        Assert.Equal(1.0, today.GetProperty("flagRate").GetDouble());
        Assert.Equal(4, today.GetProperty("verdicts").GetProperty("unreviewed").GetInt32());
        Assert.Equal(1, today.GetProperty("verdicts").GetProperty("false-alarm").GetInt32());
        Assert.Equal(1, today.GetProperty("verdicts").GetProperty("needs-follow-up").GetInt32());
        Assert.Equal(changed, today.GetProperty("changedPredictions").GetInt32());
        Assert.Equal(Math.Round(changed / 6.0, 4), today.GetProperty("changedPredictionRate").GetDouble());
        Assert.Equal(6, series.GetProperty("total").GetProperty("flagged").GetInt32());
        Assert.Empty((await http.GetFromJsonAsync<JsonElement>("/api/audit/trends?configuration=other")).GetProperty("series").EnumerateArray());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/audit/trends?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/audit/trends?since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z")).StatusCode);
    }

    [Fact]
    public async Task An_audit_bundle_streams_a_zip_of_the_flagged_images_records_verdicts_trail_and_index()
    {
        var (tenantId, http, jobId, images) = await FlaggedJobAsync("bundle");
        using var _ = http;
        (await http.PostAsJsonAsync($"/api/audit/{jobId}/1/reviews", new { verdict = "confirmed-attack", note = "first" })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync($"/api/audit/{jobId}/1/reviews", new { verdict = "needs-follow-up", note = "second look" })).EnsureSuccessStatusCode();

        using var response = await http.GetAsync("/api/audit/bundle", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/zip", response.Content.Headers.ContentType?.MediaType);
        Assert.Null(response.Content.Headers.ContentLength);   // streamed
        Assert.Equal("6", response.Headers.GetValues(AuditBundle.ImagesHeader).Single());
        var estimate = long.Parse(response.Headers.GetValues(AuditBundle.EstimatedBytesHeader).Single(), CultureInfo.InvariantCulture);
        Assert.True(estimate >= images.Sum(i => i.Bytes.Length), $"estimate {estimate}");
        var bytes = await response.Content.ReadAsByteArrayAsync();
        using var zip = new ZipArchive(new MemoryStream(bytes), ZipArchiveMode.Read);

        var index = Read(zip, "index.csv").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(AuditBundle.IndexHeader, index[0]);
        Assert.Equal(7, index.Length);
        var columns = index[0].Split(',').ToList();
        foreach (var row in index.Skip(1).Select(r => r.Split(',')))
        {
            var i = int.Parse(row[columns.IndexOf("index")], CultureInfo.InvariantCulture);
            var image = zip.GetEntry(row[columns.IndexOf("image_file")])!;
            using var content = new MemoryStream();
            await using (var s = await image.OpenAsync()) await s.CopyToAsync(content);
            Assert.Equal(images[i].Bytes, content.ToArray());
            using var record = JsonDocument.Parse(Read(zip, row[columns.IndexOf("record_file")]));
            Assert.Equal("tapt-audit", record.RootElement.GetProperty("format").GetString());
            Assert.Equal(i, record.RootElement.GetProperty("imageIndex").GetInt32());
            Assert.Equal(i == 1 ? "needs-follow-up" : "unreviewed", row[columns.IndexOf("verdict")]);
            Assert.Equal(i == 1 ? "2" : "", row[columns.IndexOf("revision")]);
        }
        var history = Read(zip, $"reviews/{jobId}/00001.jsonl").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, history.Length);
        Assert.Contains("second look", history[1]);
        var trail = Read(zip, "trail.jsonl").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(trail, e => e.GetProperty("kind").GetString() == "job.created" && e.GetProperty("target").GetProperty("jobId").GetString() == jobId);
        Assert.Equal(2, trail.Count(e => e.GetProperty("kind").GetString() == "verdict.recorded"));
        using var manifest = JsonDocument.Parse(Read(zip, "manifest.json"));
        Assert.Equal(tenantId, manifest.RootElement.GetProperty("tenantId").GetString());
        Assert.Equal(6, manifest.RootElement.GetProperty("flaggedImages").GetInt32());
        Assert.Equal(1, manifest.RootElement.GetProperty("reviewedImages").GetInt32());

        // A range without flagged images gives an empty bundle; a bad range a 400; the export itself is in the trail.
        using var empty = new ZipArchive(new MemoryStream(await http.GetByteArrayAsync("/api/audit/bundle?since=2025-01-01T00:00:00Z&until=2025-01-02T00:00:00Z")));
        Assert.Equal(AuditBundle.IndexHeader, Assert.Single(Read(empty, "index.csv").Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/audit/bundle?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z")).StatusCode);
        var exports = await http.GetFromJsonAsync<TrailPage>("/api/trail?kind=export.bundle", GatewayFixture.Json);
        Assert.Equal(2, exports!.Items.Length);
    }

    private static string Read(ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name) ?? throw new Xunit.Sdk.XunitException($"the bundle has no {name}: {string.Join(", ", zip.Entries.Select(e => e.FullName))}");
        using var reader = new StreamReader(entry.Open());
        return reader.ReadToEnd();
    }
}
