using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The per-tenant audit trail: what is recorded and by whom, reading it in pages and exporting it, and that no route alters it.</summary>
[Collection(GatewayCollection.Name)]
public sealed class AuditTrailTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_trail_records_who_did_what_pages_filters_and_exports_it()
    {
        var (tenantId, key, http) = await gateway.TenantWithSetupAsync("trail");
        using var _ = http;
        var keyId = (await http.GetFromJsonAsync<JsonElement>("/api/keys"))[0].GetProperty("keyId").GetString()!;
        var jobId = await GatewayFixture.CreateJobAsync(http, "traced");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([1, 2, 3]));
        (await http.PostAsync($"/api/jobs/{jobId}/cancel", null)).EnsureSuccessStatusCode();
        var issued = await (await http.PostAsJsonAsync("/api/keys", new { name = "second" })).Content.ReadFromJsonAsync<JsonElement>();
        var secondId = issued.GetProperty("keyId").GetString()!;
        using (var op = gateway.Operator())
            Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/api/tenants/{tenantId}/keys/{secondId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-configurations/default")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/api/jobs/job-missing/start", null)).StatusCode);   // failures are not entries

        var all = (await http.GetFromJsonAsync<TrailPage>("/api/trail?limit=500", GatewayFixture.Json))!;
        Assert.Null(all.NextCursor);
        var kinds = all.Items.Select(e => e.Kind).Reverse().ToList();
        Assert.Equal(["tenant.created", "vocabulary.created", "configuration.created", "job.created", "images.uploaded", "job.cancelled", "key.issued", "key.revoked", "configuration.deleted"], kinds);
        Assert.True(all.Items.Zip(all.Items.Skip(1)).All(p => p.First.At >= p.Second.At), "newest first");
        var byKind = all.Items.ToDictionary(e => e.Kind);
        Assert.Equal("operator", byKind["tenant.created"].Actor);
        Assert.Equal("operator", byKind["key.revoked"].Actor);
        Assert.Equal(secondId, byKind["key.revoked"].Target["keyId"]);
        Assert.Equal(keyId, byKind["job.created"].Actor);
        Assert.Equal(jobId, byKind["job.created"].Target["jobId"]);
        Assert.Equal("3", byKind["images.uploaded"].Target["accepted"]);
        Assert.Equal(secondId, byKind["key.issued"].Target["keyId"]);
        Assert.Equal("default", byKind["configuration.deleted"].Target["name"]);
        Assert.DoesNotContain(all.Items, e => e.Target.Values.Any(v => v.Contains(key, StringComparison.Ordinal)));   // never a secret

        // Pages of two, followed by their cursors, give the same entries; kind filters by name or prefix; time ranges cut.
        var paged = new List<TrailEntry>();
        string? cursor = null;
        do
        {
            var page = (await http.GetFromJsonAsync<TrailPage>($"/api/trail?limit=2{(cursor is null ? "" : "&cursor=" + cursor)}", GatewayFixture.Json))!;
            Assert.True(page.Items.Length <= 2);
            paged.AddRange(page.Items);
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        Assert.Equal(all.Items.Select(e => e.Id), paged.Select(e => e.Id));
        var keys = (await http.GetFromJsonAsync<TrailPage>("/api/trail?kind=key", GatewayFixture.Json))!;
        Assert.Equal(["key.revoked", "key.issued"], keys.Items.Select(e => e.Kind));
        var some = (await http.GetFromJsonAsync<TrailPage>("/api/trail?kind=job.created,job.cancelled", GatewayFixture.Json))!;
        Assert.Equal(2, some.Items.Length);
        var since = Uri.EscapeDataString(byKind["key.issued"].At.ToString("O"));
        Assert.Equal(3, (await http.GetFromJsonAsync<TrailPage>($"/api/trail?since={since}", GatewayFixture.Json))!.Items.Length);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/trail?cursor=not-a-cursor")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/trail?kind=%3Cscript%3E")).StatusCode);

        // Exports: JSON lines and CSV, oldest first; the export itself is then in the trail.
        var jsonl = (await http.GetStringAsync("/api/trail/export")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(all.Items.Select(e => e.Id).Reverse(), jsonl.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("id").GetString()));
        var csv = (await http.GetStringAsync("/api/trail/export?format=csv&kind=key")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(TrailEndpoints.CsvHeader, csv[0]);
        Assert.Equal(3, csv.Length);
        Assert.Contains("key.issued", csv[1]);
        Assert.Equal(2, (await http.GetFromJsonAsync<TrailPage>("/api/trail?kind=export.trail", GatewayFixture.Json))!.Items.Length);
    }

    [Fact]
    public async Task No_method_on_any_trail_route_edits_or_deletes_an_entry_and_the_blobs_are_append_blobs()
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("append-only");
        using var _ = http;
        await GatewayFixture.CreateJobAsync(http);
        var before = await http.GetStringAsync("/api/trail/export");
        var entries = before.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, entries.Length);
        var first = JsonDocument.Parse(entries[0]).RootElement.GetProperty("id").GetString()!;
        string[] routes = ["/api/trail", "/api/trail/", "/api/trail/export", $"/api/trail/{first}", $"/api/trail/{first}/edit"];
        string[] methods = ["POST", "PUT", "PATCH", "DELETE"];
        var failures = new List<string>();
        foreach (var route in routes)
            foreach (var method in methods)
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), route)
                {
                    Content = new StringContent("""{"id":"x","kind":"forged","actor":"someone","target":{}}""", Encoding.UTF8, "application/json"),
                };
                using var response = await http.SendAsync(request);
                if (response.StatusCode is not (HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound))
                    failures.Add($"{method} {route}: {(int)response.StatusCode}");
            }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        // Every entry is still there, byte for byte, and nothing was added by the attempts.
        var after = await http.GetStringAsync("/api/trail/export");
        Assert.StartsWith(before, after);
        var added = after[before.Length..].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["export.trail"], added.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("kind").GetString()));

        // In storage: append blobs under the tenant's container's trail/ prefix.
        var container = new BlobServiceClient(gateway.Storage.ConnectionString).GetBlobContainerClient(TenantContainers.NameOf(tenantId));
        var blobs = new List<BlobItem>();
        await foreach (var b in container.GetBlobsAsync(new GetBlobsOptions { Prefix = AuditTrailStore.Prefix })) blobs.Add(b);
        Assert.NotEmpty(blobs);
        Assert.All(blobs, b => Assert.Equal(BlobType.Append, b.Properties.BlobType));
    }
}
