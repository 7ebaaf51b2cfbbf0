using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>A tenant key, however it is sent, is written to no log, span or metric.</summary>
[Collection(GatewayCollection.Name)]
public sealed class SecretRedactionTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_key_sent_as_access_token_or_in_a_header_is_in_no_log_record_span_or_metric()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var (factory, baseAddress) = await GatewayFixture.StartAsync(EverythingLoggedAndTraced(), l => l.AddFakeLogging());
        string key, metrics;
        await using (factory)
        {
            using var op = new HttpClient { BaseAddress = baseAddress };
            op.DefaultRequestHeaders.Add("X-Api-Key", GatewayFixture.OperatorKey);
            var created = await op.PostAsJsonAsync("/api/tenants", new { id = "logs-" + Guid.NewGuid().ToString("N")[..12] });
            key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetProperty("secret").GetString()!;

            // The hub as browsers reach it (accessTokenFactory): the key in access_token, over each transport.
            var hubUrl = new Uri(baseAddress, "/hubs/jobs?access_token=" + Uri.EscapeDataString(key));
            foreach (var transport in new[] { HttpTransportType.WebSockets, HttpTransportType.ServerSentEvents, HttpTransportType.LongPolling })
            {
                await using var hub = new HubConnectionBuilder().WithUrl(hubUrl, transport).Build();
                await hub.StartAsync();
                await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<JsonElement>("Subscribe", Identifiers.NewJobId()));
            }
            // In the headers, and where it is refused: access_token on the API, a key one character off.
            using var http = new HttpClient { BaseAddress = baseAddress };
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, "/api/jobs", r => r.Headers.Add("X-Api-Key", key))).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(http, "/api/jobs", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key))).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/api/jobs?access_token=" + Uri.EscapeDataString(key), _ => { })).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(http, "/hubs/jobs/negotiate?negotiateVersion=1&access_token=" + Uri.EscapeDataString(OneCharacterOff(key)), _ => { }, HttpMethod.Post)).StatusCode);
            metrics = await op.GetStringAsync("/metrics");

            var records = factory.Services.GetFakeLogCollector().GetSnapshot();
            // The sinks saw the requests (so a key in them would be found): the hosting layer's request lines and the hub's spans.
            Assert.Contains(records, r => r.Message.Contains("Request starting", StringComparison.Ordinal) && r.Message.Contains("/hubs/jobs", StringComparison.Ordinal));
            Assert.Contains(spans, s => s.GetTagItem("url.path") is "/hubs/jobs/negotiate");

            var secrets = new[] { key, Uri.EscapeDataString(key), key.Split('.')[3], key.Split('.')[4] };
            AssertFreeOf(secrets, "log", records.Select(Describe));
            AssertFreeOf(secrets, "span", spans.Select(s => $"{s.DisplayName} {string.Join(' ', s.TagObjects.Select(t => $"{t.Key}={t.Value}"))} {string.Join(' ', s.Events.SelectMany(e => e.Tags.Select(t => $"{t.Key}={t.Value}")))}"));
            AssertFreeOf(secrets, "metric", [metrics]);
        }
    }

    [Fact]
    public void Only_the_access_token_value_leaves_the_query_whatever_its_case_and_place()
    {
        Assert.Null(AccessTokenRedactingContextFactory.RedactQuery(null));
        Assert.Null(AccessTokenRedactingContextFactory.RedactQuery("?id=abc&negotiateVersion=1"));
        Assert.Null(AccessTokenRedactingContextFactory.RedactQuery("?note=access_token"));
        var (query, token) = AccessTokenRedactingContextFactory.RedactQuery("?id=abc&Access_Token=tapt.a%2Bb.c&negotiateVersion=1")!.Value;
        Assert.Equal("tapt.a+b.c", token);
        Assert.Equal("?id=abc&Access_Token=REDACTED&negotiateVersion=1", query);
    }

    /// <summary>A gateway of its own (all-in-one, its own cluster) logging every category at every level, tracing on.</summary>
    private Dictionary<string, string> EverythingLoggedAndTraced()
    {
        var clusterId = "logs-" + Guid.NewGuid().ToString("N")[..12];
        var settings = new Dictionary<string, string>(gateway.Settings)
        {
            ["Orleans:ClusterId"] = clusterId,
            ["Orleans:ServiceId"] = clusterId,
            ["Orleans:SiloPort"] = GatewayFixture.FreePort().ToString(CultureInfo.InvariantCulture),
            ["Orleans:GatewayPort"] = GatewayFixture.FreePort().ToString(CultureInfo.InvariantCulture),
            // Spans are made when an OTLP endpoint is set; nothing listens on this one.
            ["Tapt:Telemetry:OtlpEndpoint"] = $"http://127.0.0.1:{GatewayFixture.FreePort()}",
        };
        foreach (var category in new[] { "Default", "Microsoft", "Microsoft.AspNetCore", "Orleans", "Polly", "TaptPlatform.Gateway.Auth" })
            settings[$"Logging:LogLevel:{category}"] = "Trace";
        return settings;
    }

    /// <summary>The key with its last character changed (never to itself: a key may end in any character).</summary>
    private static string OneCharacterOff(string key) => key[..^1] + (key[^1] == 'A' ? 'B' : 'A');

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string path, Action<HttpRequestMessage> configure, HttpMethod? method = null)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        configure(request);
        return await http.SendAsync(request);
    }

    /// <summary>What a log sink could write of a record: its message, every state value, its scopes and its exception.</summary>
    private static string Describe(FakeLogRecord r) =>
        $"{r.Category} {r.Message} {string.Join(' ', r.StructuredState?.Select(kv => $"{kv.Key}={kv.Value}") ?? [])} " +
        $"{string.Join(' ', r.Scopes.Select(ScopeText))} {r.Exception}";

    private static string ScopeText(object? scope) => scope is IEnumerable<KeyValuePair<string, object?>> pairs
        ? string.Join(' ', pairs.Select(kv => $"{kv.Key}={kv.Value}")) + " " + scope
        : scope?.ToString() ?? "";

    private static void AssertFreeOf(string[] secrets, string sink, IEnumerable<string> texts)
    {
        foreach (var text in texts)
            foreach (var secret in secrets)
                Assert.False(text.Contains(secret, StringComparison.Ordinal), $"a {sink} holds the key: {text.Replace(secret, "«KEY»", StringComparison.Ordinal)}");
    }
}
