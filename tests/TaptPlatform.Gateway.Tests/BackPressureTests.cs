using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Above the cluster's capacity, starts are refused with 429 and the refused work stays stored, never dropped.</summary>
[Collection(GatewayCollection.Name)]
public sealed class BackPressureTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Past_the_clusters_running_jobs_limit_a_start_answers_429_and_the_refused_job_keeps_its_images_until_it_runs()
    {
        // A second gateway on the fixture's cluster that lets one job run at a time in the whole cluster.
        var settings = new Dictionary<string, string>(gateway.Settings)
        {
            ["Tapt:Gateway:Mode"] = "client",
            ["Tapt:Gateway:MaxRunningJobs"] = "1",
        };
        var (factory, baseAddress) = await GatewayFixture.StartAsync(settings);
        await using var _ = factory;
        var (_, key) = await gateway.CreateTenantAsync(prefix: "busy");
        using var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        (await http.PostAsJsonAsync("/api/vocabularies", new { name = "fashion", labels = TestModels.FashionLabels })).EnsureSuccessStatusCode();
        // A slow job (its running batch outlasts the checks below) and a cheap one.
        (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "slow", model = TestModels.Tiny, views = 1024, steps = 100 })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "default", model = TestModels.Tiny, views = 16, steps = 1 })).EnsureSuccessStatusCode();
        var slow = await CreateAsync(http, "slow");
        var queued = await CreateAsync(http, "default");
        await GatewayFixture.UploadAsync(http, slow, GatewayFixture.FashionImages([0, 1]));
        await GatewayFixture.UploadAsync(http, queued, GatewayFixture.FashionImages([2, 3, 4]));

        // Jobs other tests left running count too: wait for them as a client would.
        await StartWhenAdmittedAsync(http, slow);
        var refused = await http.PostAsync($"/api/jobs/{queued}/start", null);
        var problem = await CatalogAndKeyTests.AssertProblem(refused, HttpStatusCode.TooManyRequests, "cluster_busy");
        Assert.Equal(TimeSpan.FromSeconds(5), refused.Headers.RetryAfter?.Delta);
        Assert.Equal(5, problem.GetProperty("retryAfterSeconds").GetInt32());
        Assert.Equal(1, problem.GetProperty("maxRunningJobs").GetInt32());

        // The refused job is still open with every image, and does not hold one of its tenant's job slots.
        var job = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{queued}");
        Assert.Equal("open", job.GetProperty("state").GetString());
        Assert.Equal(3, job.GetProperty("counts").GetProperty("total").GetInt32());
        var usage = await http.GetFromJsonAsync<JsonElement>("/api/usage");
        Assert.Equal([slow], usage.GetProperty("usage").GetProperty("runningJobs").EnumerateArray().Select(j => j.GetString()));

        // Once the running job ends, the refused one starts (as a client would, after Retry-After) and every image gets its result.
        (await http.PostAsync($"/api/jobs/{slow}/cancel", null)).EnsureSuccessStatusCode();
        await StartWhenAdmittedAsync(http, queued);
        await GatewayFixture.WaitForJobAsync(http, queued, TimeSpan.FromMinutes(1));
        var results = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{queued}/results");
        Assert.Equal([0, 1, 2], results.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("index").GetInt32()));
    }

    private static async Task StartWhenAdmittedAsync(HttpClient http, string jobId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        HttpResponseMessage start;
        while ((start = await http.PostAsync($"/api/jobs/{jobId}/start", null)).StatusCode == HttpStatusCode.TooManyRequests)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the cluster did not admit job {jobId} within a minute");
            await Task.Delay(TimeSpan.FromSeconds(1.1));   // the admission looks at finished jobs at most once a second
        }
        start.EnsureSuccessStatusCode();
    }

    private static async Task<string> CreateAsync(HttpClient http, string configuration)
    {
        var response = await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = configuration });
        return (await CatalogAndKeyTests.Created(response)).GetProperty("jobId").GetString()!;
    }
}
