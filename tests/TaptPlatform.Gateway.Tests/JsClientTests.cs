using System.Diagnostics;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Live progress through the official JavaScript client (<c>@microsoft/signalr</c>, installed by .ci/run) under Node.</summary>
[Collection(GatewayCollection.Name)]
public sealed class JsClientTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_official_javascript_client_gets_the_snapshot_and_the_live_events_and_is_refused_other_tenants_jobs()
    {
        var root = RepositoryRoot.Find();
        var module = Path.Combine(root, ".tools", "signalr", "node_modules", "@microsoft", "signalr");
        Assert.True(Directory.Exists(module),
            $"{module} is missing: install it with 'npm install --prefix .tools/signalr @microsoft/signalr@10.0.11' (as .ci/run does)");
        var (_, _, other) = await gateway.TenantWithSetupAsync("js-other");
        var foreignJob = await GatewayFixture.CreateJobAsync(other);
        other.Dispose();

        var (_, key, http) = await gateway.TenantWithSetupAsync("js", steps: 3, views: 64);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "js");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 8)));

        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            Environment = { ["SIGNALR_MODULE"] = module },
        };
        foreach (var a in new[] { Path.Combine(root, "tests", "TaptPlatform.Gateway.Tests", "js", "live-client.cjs"), gateway.BaseAddress.ToString().TrimEnd('/'), key, jobId, foreignJob })
            psi.ArgumentList.Add(a);
        using var node = Process.Start(psi)!;
        var stderr = node.StandardError.ReadToEndAsync();
        try
        {
            var subscribed = await NextLineAsync(node, "subscribed");
            Assert.Equal("open", subscribed.GetProperty("state").GetString());
            Assert.Equal(8, subscribed.GetProperty("total").GetInt32());
            Assert.Equal(10, subscribed.GetProperty("labels").GetInt32());
            Assert.Equal("WebSocketTransport", subscribed.GetProperty("transport").GetString());
            Assert.Equal($"An unexpected error occurred invoking 'Subscribe' on the server. HubException: job '{foreignJob}' not found",
                subscribed.GetProperty("foreignError").GetString());

            (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
            var done = await NextLineAsync(node, "done");
            Assert.Equal("completed", done.GetProperty("last").GetProperty("state").GetString());
            Assert.Equal(8, done.GetProperty("last").GetProperty("completed").GetInt32());
            var results = done.GetProperty("results").EnumerateArray().ToList();
            Assert.Equal(Enumerable.Range(0, 8), results.Select(r => r.GetProperty("index").GetInt32()).Order());
            Assert.All(results, r => Assert.Contains(r.GetProperty("label").GetString(), TestModels.FashionLabels));
            Assert.True(done.GetProperty("steps").GetInt32() > 0);
            Assert.Equal(0, done.GetProperty("resync").GetInt32());
            Assert.True(await Task.Run(() => node.WaitForExit(20_000)), "node did not exit");
            Assert.Equal(0, node.ExitCode);
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            if (!node.HasExited) node.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"node failed: {await stderr}", e);
        }
        finally
        {
            if (!node.HasExited) node.Kill(entireProcessTree: true);
        }
    }

    private static async Task<JsonElement> NextLineAsync(Process node, string expected)
    {
        while (true)
        {
            var line = await node.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60))
                ?? throw new InvalidOperationException($"node ended before printing '{expected}'");
            var json = JsonDocument.Parse(line).RootElement;
            var kind = json.GetProperty("event").GetString();
            if (kind == "error") throw new InvalidOperationException("node: " + json.GetProperty("message").GetString());
            if (kind == expected) return json;
        }
    }
}
