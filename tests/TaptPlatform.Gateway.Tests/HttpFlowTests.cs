using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class HttpFlowTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_tenant_uploads_runs_pages_exports_and_audits_a_job_over_http()
    {
        // Every image is flagged (a confidence threshold of 1), so the audit has something to show.
        var (_, _, http) = await gateway.TenantWithSetupAsync("flow", minimumConfidence: 1.0);
        var jobId = await GatewayFixture.CreateJobAsync(http, "first job", seed: 3);

        // 12 images in one request reach the job grain in chunks of 5.
        var images = GatewayFixture.FashionImages(Enumerable.Range(0, 12)).ToList();
        var receipt = await GatewayFixture.UploadAsync(http, jobId, images);
        Assert.Equal(Enumerable.Range(0, 12), receipt.Accepted.Select(a => a.Index));
        Assert.Equal(images.Select(i => i.Name), receipt.Accepted.Select(a => a.Name));
        Assert.Empty(receipt.Rejected);
        Assert.Equal(12, receipt.TotalImages);

        var started = await (await http.PostAsync($"/api/jobs/{jobId}/start", null)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(started.GetProperty("state").GetString(), new[] { "running", "completed" });
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal("completed", done.GetProperty("state").GetString());
        Assert.Equal(12, done.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.Equal(12, done.GetProperty("counts").GetProperty("flagged").GetInt32());
        Assert.True(done.GetProperty("throughputPerSecond").GetDouble() > 0);

        // Paged results, in image order.
        var first = (await http.GetFromJsonAsync<ResultPageView>($"/api/jobs/{jobId}/results?offset=0&limit=5", GatewayFixture.Json))!;
        var second = (await http.GetFromJsonAsync<ResultPageView>($"/api/jobs/{jobId}/results?offset={first.NextOffset}&limit=100", GatewayFixture.Json))!;
        Assert.Equal(12, first.TotalResults);
        Assert.Equal(5, first.NextOffset);
        Assert.Null(second.NextOffset);
        var all = first.Items.Concat(second.Items).ToList();
        Assert.Equal(Enumerable.Range(0, 12), all.Select(r => r.Index));
        Assert.All(all, r =>
        {
            Assert.Null(r.Error);
            Assert.Contains(r.Label, TestModels.FashionLabels);
            Assert.Contains(r.BaselineLabel, TestModels.FashionLabels);
            Assert.Contains("lowConfidence", r.Reasons);
            Assert.NotEmpty(r.TopK);
        });

        // The full record, the stored input and the artifacts.
        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}/results/4");
        Assert.Equal(10, detail.GetProperty("outcome").GetProperty("probabilities").GetArrayLength());
        var image = await http.GetAsync($"/api/jobs/{jobId}/images/4");
        Assert.Equal("image/png", image.Content.Headers.ContentType?.MediaType);
        Assert.Equal(images[4].Bytes, await image.Content.ReadAsByteArrayAsync());
        var artifacts = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}/artifacts");
        Assert.Equal(36, artifacts.GetArrayLength());   // 12 inputs, 12 results, 12 audit records

        // Exports.
        var csv = await http.GetStringAsync($"/api/jobs/{jobId}/export?format=csv");
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("index,name,label,confidence,baseline_label,apt_label,flagged,reasons,error,completed_at", lines[0]);
        Assert.Equal(13, lines.Length);
        Assert.StartsWith("0,fashion-0.png,", lines[1]);
        var json = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}/export?format=json");
        Assert.Equal(12, json.GetProperty("results").GetArrayLength());
        Assert.Equal(jobId, json.GetProperty("job").GetProperty("jobId").GetString());

        // Audit: the list with filters, one record with its steps, the download.
        var audit = await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}", GatewayFixture.Json);
        Assert.Equal(12, audit!.Items.Length);
        var label = all[0].Label!;
        var byLabel = await http.GetFromJsonAsync<AuditPage>($"/api/audit?jobId={jobId}&label={Uri.EscapeDataString(label)}&reason=lowConfidence", GatewayFixture.Json);
        Assert.NotEmpty(byLabel!.Items);
        Assert.All(byLabel.Items, i => Assert.True(i.Result.Label == label || i.Result.BaselineLabel == label));
        var future = await http.GetFromJsonAsync<AuditPage>($"/api/audit?since={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"))}", GatewayFixture.Json);
        Assert.Empty(future!.Items);
        var record = await http.GetFromJsonAsync<JsonElement>($"/api/audit/{jobId}/2");
        Assert.Equal("tapt-audit", record.GetProperty("record").GetProperty("format").GetString());
        Assert.True(record.GetProperty("record").GetProperty("tuning").GetProperty("stepMetrics").GetArrayLength() >= 1);
        Assert.Equal($"/api/jobs/{jobId}/images/2", record.GetProperty("imageUrl").GetString());
        var download = await http.GetAsync($"/api/audit/{jobId}/2/download");
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        Assert.Contains("tapt-audit", await download.Content.ReadAsStringAsync());

        // The job list shows it.
        var jobs = await http.GetFromJsonAsync<JsonElement>("/api/jobs");
        Assert.Equal(jobId, jobs[0].GetProperty("jobId").GetString());
    }
}
