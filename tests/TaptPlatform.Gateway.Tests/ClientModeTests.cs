using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>The production shape: a gateway that is only an Orleans client of a cluster it does not host.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ClientModeTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_gateway_in_client_mode_joins_the_cluster_serves_the_api_and_pushes_live_events()
    {
        // A second gateway, in client mode, on the cluster of the fixture's all-in-one gateway.
        var settings = new Dictionary<string, string>(gateway.Settings) { ["Tapt:Gateway:Mode"] = "client" };
        var (factory, baseAddress) = await GatewayFixture.StartAsync(settings);
        await using var _ = factory;
        using var op = new HttpClient { BaseAddress = baseAddress };
        op.DefaultRequestHeaders.Add("X-Api-Key", GatewayFixture.OperatorKey);
        var tenantId = "client-" + Guid.NewGuid().ToString("N")[..12];
        var created = await op.PostAsJsonAsync("/api/tenants", new { id = tenantId });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetProperty("secret").GetString()!;

        using var http = new HttpClient { BaseAddress = baseAddress };
        http.DefaultRequestHeaders.Add("X-Api-Key", key);
        (await http.PostAsJsonAsync("/api/vocabularies", new { name = "fashion", labels = Grains.Tests.Infrastructure.TestModels.FashionLabels })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "default", model = "tiny", steps = 2 })).EnsureSuccessStatusCode();
        var jobId = await GatewayFixture.CreateJobAsync(http);
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 6)));

        await using var live = await LiveEventsTests.LiveClient.ConnectAsync(gateway, key, baseAddress);
        await live.SubscribeAsync(jobId);
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var final = await live.Final.Task.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(6, final.Completed);
        Assert.Equal(6, live.Results.Count);

        // Both gateways see the same tenant, key and job.
        using var other = gateway.WithKey(key);
        Assert.Equal("completed", (await other.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}")).GetProperty("state").GetString());
    }
}
