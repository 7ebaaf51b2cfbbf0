using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using TaptPlatform.Gateway.Hosting;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Telemetry;

namespace TaptPlatform.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class ObservabilityTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_all_in_one_gateway_serves_the_orleans_dashboard_to_loopback_clients()
    {
        using var http = gateway.Anonymous();
        var page = await http.GetAsync("/dashboard/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Orleans Dashboard", await page.Content.ReadAsStringAsync());

        // Its API sees this cluster: one active silo hosting the platform's grains.
        var counters = await http.GetFromJsonAsync<JsonElement>("/dashboard/DashboardCounters");
        Assert.Equal(1, counters.GetProperty("totalActiveHostCount").GetInt32());
        Assert.Contains(counters.GetProperty("simpleGrainStats").EnumerateArray(),
            g => g.GetProperty("grainType").GetString()!.Contains("TenantGrain", StringComparison.Ordinal));

        // Anyone else gets 404 (it has no authentication).
        Assert.True(TaptGatewayExtensions.IsLoopback(IPAddress.Loopback));
        Assert.True(TaptGatewayExtensions.IsLoopback(IPAddress.IPv6Loopback));
        Assert.True(TaptGatewayExtensions.IsLoopback(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.False(TaptGatewayExtensions.IsLoopback(IPAddress.Parse("10.1.2.3")));
        Assert.False(TaptGatewayExtensions.IsLoopback(IPAddress.Parse("::ffff:192.168.1.2")));
        Assert.False(TaptGatewayExtensions.IsLoopback(null));
    }

    [Fact]
    public async Task A_job_started_over_http_is_one_trace_down_to_the_engine_and_its_tenant_metrics_are_scraped()
    {
        var spans = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Microsoft.AspNetCore" or "Microsoft.Orleans.Application" || TaptTelemetry.SourceNames.Contains(s.Name),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("obs", minimumConfidence: 1.0);
        var jobId = await GatewayFixture.CreateJobAsync(http, "traced");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 4)));

        // The caller's trace context (W3C traceparent) is continued by the gateway, the grains and the engine.
        var trace = ActivityTraceId.CreateRandom();
        using (var start = new HttpRequestMessage(HttpMethod.Post, $"/api/jobs/{jobId}/start"))
        {
            start.Headers.Add("traceparent", $"00-{trace.ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
            Assert.True((await http.SendAsync(start)).IsSuccessStatusCode);
        }
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal(4, done.GetProperty("counts").GetProperty("flagged").GetInt32());

        var traced = spans.Where(a => a.TraceId == trace).ToList();
        Assert.Contains(traced, a => a.Source.Name == "Microsoft.AspNetCore");
        Assert.Equal(4, traced.Count(a => a.OperationName == "tapt.job.image"));
        var batches = traced.Where(a => a.OperationName == "tapt.tuning.batch").ToList();
        Assert.NotEmpty(batches);
        Assert.All(batches, b => Assert.Equal(tenantId, b.GetTagItem(TaptTelemetry.TenantAttribute)));

        // The scrape endpoint has this tenant's images and flags (the job's end is recorded just after it reads as completed).
        using var op = gateway.Operator();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string metrics;
        while (true)
        {
            metrics = await op.GetStringAsync("/metrics");
            if (Value(metrics, "tapt_jobs_duration_seconds_count", tenantId) is not null || DateTime.UtcNow > deadline) break;
            await Task.Delay(500);
        }
        Assert.Equal(4, Value(metrics, "tapt_jobs_images_total", tenantId, "outcome=\"succeeded\""));
        Assert.Equal(4, Value(metrics, "tapt_jobs_images_flagged_total", tenantId));
        Assert.Equal(4, Value(metrics, "tapt_tuning_image_duration_milliseconds_count", tenantId));
        Assert.Equal(1, Value(metrics, "tapt_jobs_duration_seconds_count", tenantId, "state=\"completed\""));
        Assert.Matches(new Regex(@"^tapt_tuning_queue_depth\{[^}]*\} \d+$", RegexOptions.Multiline), metrics);
    }

    /// <summary>The value of the Prometheus series of <paramref name="name"/> for this tenant (and label), if any.</summary>
    private static double? Value(string exposition, string name, string tenantId, string? label = null)
    {
        foreach (var line in exposition.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) || !line.Contains($"tenant=\"{tenantId}\"", StringComparison.Ordinal)) continue;
            if (label is not null && !line.Contains(label, StringComparison.Ordinal)) continue;
            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return null;
    }
}
