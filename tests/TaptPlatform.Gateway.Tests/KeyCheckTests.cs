using System.Net.Http.Json;
using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Keys are refused before any work: forged ones without a grain, floods of bad ones by the rate limiter.</summary>
[Collection(GatewayCollection.Name)]
public sealed class KeyCheckTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Forged_keys_get_401_without_activating_their_tenant_grains_and_only_correctly_signed_ones_reach_a_grain()
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var forger = new ApiKeySigner("a-signing-key-that-is-not-the-gateways-0123456789");
        using var anonymous = gateway.Anonymous();
        for (var i = 0; i < 50; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(anonymous, forger.Mint($"forged-{run}-{i}", "0123456789ab")));
        // A real key's MAC altered, and a forged key over the hub's access_token.
        var (_, realKey) = await gateway.CreateTenantAsync(prefix: "real");
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(anonymous, realKey[..^2] + (realKey.EndsWith("AA", StringComparison.Ordinal) ? "BB" : "AA")));
        await using (var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(gateway.BaseAddress, "/hubs/jobs"), o => o.AccessTokenProvider = () => Task.FromResult<string?>(forger.Mint($"forged-{run}-hub", "0123456789ab")))
            .Build())
            Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAnyAsync<HttpRequestException>(() => hub.StartAsync())).StatusCode);
        Assert.Empty(await TenantActivationsAsync($"forged-{run}"));

        // The count sees activations: a key signed with the real signing key but unknown to its tenant is asked there
        // (and refused), once: the refusal is remembered.
        var unknown = new ApiKeySigner(GatewayFixture.ApiKeySigningKey).Mint($"unknown-{run}", "0123456789ab");
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(anonymous, unknown));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(anonymous, unknown));
        Assert.Single(await TenantActivationsAsync($"unknown-{run}"));
    }

    [Fact]
    public async Task A_flood_of_bad_keys_from_one_address_gets_429_after_its_burst_while_a_tenant_key_from_it_is_served()
    {
        // A second gateway (client mode, on the fixture's cluster) with a tight limit for requests without a valid key.
        var settings = new Dictionary<string, string>(gateway.Settings)
        {
            ["Tapt:Gateway:Mode"] = "client",
            ["Tapt:Gateway:Unauthenticated:RequestsPerSecond"] = "1",
            ["Tapt:Gateway:Unauthenticated:Burst"] = "5",
        };
        var (factory, baseAddress) = await GatewayFixture.StartAsync(settings);
        await using var _ = factory;
        var (_, tenantKey) = await gateway.CreateTenantAsync(prefix: "flood");
        using var http = new HttpClient { BaseAddress = baseAddress };
        var forger = new ApiKeySigner("a-signing-key-that-is-not-the-gateways-0123456789");

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? firstLimited = null;
        for (var i = 0; i < 30; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/jobs");
            request.Headers.Add("X-Api-Key", forger.Mint($"flood-target-{i}", "0123456789ab"));
            var response = await http.SendAsync(request);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) firstLimited ??= response;
        }
        Assert.All(statuses.Take(5), s => Assert.Equal(HttpStatusCode.Unauthorized, s));
        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests, s.ToString()));
        Assert.NotNull(firstLimited);
        await CatalogAndKeyTests.AssertProblem(firstLimited, HttpStatusCode.TooManyRequests, "rate_limited");
        Assert.True(firstLimited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        // A tenant's signed key draws from its tenant's bucket, not the address's.
        Assert.Equal(HttpStatusCode.OK, await StatusWithKeyAsync(http, tenantKey));
    }

    [Fact]
    public async Task A_key_revoked_on_one_gateway_and_an_erased_tenants_keys_are_refused_at_once_by_another_that_remembered_them_for_ten_minutes()
    {
        var settings = new Dictionary<string, string>(gateway.Settings)
        {
            ["Tapt:Gateway:Mode"] = "client",
            ["Tapt:Gateway:KeyCacheDuration"] = "00:10:00",
        };
        var (factory, secondAddress) = await GatewayFixture.StartAsync(settings);
        await using var _ = factory;
        await factory.Services.GetRequiredService<Auth.KeyRevocationListener>().Subscribed.WaitAsync(TimeSpan.FromSeconds(30));
        var (tenantId, key) = await gateway.CreateTenantAsync(prefix: "revoked");
        using var second = new HttpClient { BaseAddress = secondAddress };
        Assert.Equal(HttpStatusCode.OK, await StatusWithKeyAsync(second, key));   // checked there, and remembered

        using var first = gateway.WithKey(key);
        var keyId = (await first.GetFromJsonAsync<System.Text.Json.JsonElement>("/api/keys")).EnumerateArray().Single().GetProperty("keyId").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await first.DeleteAsync($"/api/keys/{keyId}")).StatusCode);

        // The notice is one-way: it arrives within moments, far inside the ten minutes the second gateway would remember.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (await StatusWithKeyAsync(second, key) != HttpStatusCode.Unauthorized)
        {
            Assert.True(DateTime.UtcNow < deadline, "the second gateway still accepts the revoked key");
            await Task.Delay(50);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusWithKeyAsync(first, key));

        // The tenant's erasure revokes every key it has: the second gateway forgets those at once too.
        using var op = gateway.Operator();
        var issued = await op.PostAsJsonAsync($"/api/tenants/{tenantId}/keys", new { name = "second" });
        Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
        var another = (await issued.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("secret").GetString()!;
        Assert.Equal(HttpStatusCode.OK, await StatusWithKeyAsync(second, another));
        Assert.Equal(HttpStatusCode.Accepted, (await op.DeleteAsync($"/api/tenants/{tenantId}")).StatusCode);
        deadline = DateTime.UtcNow.AddSeconds(5);
        while (await StatusWithKeyAsync(second, another) != HttpStatusCode.Unauthorized)
        {
            Assert.True(DateTime.UtcNow < deadline, "the second gateway still accepts a key of the erased tenant");
            await Task.Delay(50);
        }
    }

    private static async Task<HttpStatusCode> StatusWithKeyAsync(HttpClient http, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/jobs");
        request.Headers.Add("X-Api-Key", key);
        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>The active tenant grains (across the cluster) whose tenant id starts with <paramref name="prefix"/>.</summary>
    private async Task<List<string>> TenantActivationsAsync(string prefix)
    {
        var management = gateway.Factory.Services.GetRequiredService<IGrainFactory>().GetGrain<IManagementGrain>(0);
        var grains = await management.GetDetailedGrainStatistics();
        // GrainType is the class's assembly-qualified name.
        return grains.Where(g => g.GrainType.Split(',')[0] == typeof(Grains.Tenants.TenantGrain).FullName)
            .Select(g => g.GrainId.Key.ToString()!)
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }
}
