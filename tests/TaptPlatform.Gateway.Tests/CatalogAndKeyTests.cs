using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class CatalogAndKeyTests(GatewayFixture gateway)
{
    [Fact]
    public async Task Vocabulary_versions_are_created_listed_read_and_deleted_but_not_while_an_unfinished_job_uses_them()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("vocab");
        var v1 = await Created(await http.PostAsJsonAsync("/api/vocabularies", new { name = "animals", labels = new[] { "cat", "dog" } }));
        Assert.Equal(1, v1.GetProperty("version").GetInt32());
        Assert.Equal("a photo of a {0}.", v1.GetProperty("template").GetString());

        // Creating it again is a conflict; an identical new version is the latest one; a different one is version 2.
        Assert.Equal(HttpStatusCode.Conflict, (await http.PostAsJsonAsync("/api/vocabularies", new { name = "animals", labels = new[] { "cat", "dog" } })).StatusCode);
        var same = await http.PostAsJsonAsync("/api/vocabularies/animals/versions", new { labels = new[] { "cat", "dog" } });
        Assert.Equal(HttpStatusCode.OK, same.StatusCode);
        var v2 = await Created(await http.PostAsJsonAsync("/api/vocabularies/animals/versions", new
        {
            labels = new object[] { "cat", new { label = "dog", promptText = "a photo of a good dog." }, "bird" },
        }));
        Assert.Equal(2, v2.GetProperty("version").GetInt32());
        Assert.Equal("a photo of a good dog.", v2.GetProperty("labels")[1].GetProperty("promptText").GetString());
        Assert.Equal(new[] { 1, 2 }, (await http.GetFromJsonAsync<int[]>("/api/vocabularies/animals/versions"))!);
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>("/api/vocabularies/animals/versions/1")).GetProperty("labels").GetArrayLength());
        Assert.Equal(3, (await http.GetFromJsonAsync<JsonElement>("/api/vocabularies/animals")).GetProperty("labels").GetArrayLength());
        var list = await http.GetFromJsonAsync<JsonElement>("/api/vocabularies");
        Assert.Contains(list.EnumerateArray(), s => s.GetProperty("name").GetString() == "animals" && s.GetProperty("latestVersion").GetInt32() == 2);

        // An open job pinned to version 1 keeps it.
        var job = await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "animals", vocabularyVersion = 1, promptConfiguration = "default" });
        var jobId = (await Created(job)).GetProperty("jobId").GetString();
        var refused = await http.DeleteAsync("/api/vocabularies/animals/versions/1");
        await AssertProblem(refused, HttpStatusCode.Conflict, "conflict", jobId!);
        Assert.Equal(HttpStatusCode.Conflict, (await http.DeleteAsync("/api/vocabularies/animals")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/vocabularies/animals/versions/2")).StatusCode);
        // A deleted version number is never given again.
        var v3 = await Created(await http.PostAsJsonAsync("/api/vocabularies/animals/versions", new { labels = new[] { "cat", "fish" } }));
        Assert.Equal(3, v3.GetProperty("version").GetInt32());

        // Once the job is finished (cancelled), its version can go.
        (await http.PostAsync($"/api/jobs/{jobId}/cancel", null)).EnsureSuccessStatusCode();
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/vocabularies/animals/versions/1")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/vocabularies/animals")).StatusCode);
        await AssertProblem(await http.GetAsync("/api/vocabularies/animals"), HttpStatusCode.NotFound, "not_found", "animals");
    }

    [Fact]
    public async Task Prompt_configuration_versions_are_created_listed_read_and_deleted_but_not_while_an_unfinished_job_uses_them()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("prompts");
        var v1 = await Created(await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "fast", model = "tiny", views = 8, steps = 1 }));
        Assert.Equal(1, v1.GetProperty("version").GetInt32());
        var v2 = await Created(await http.PostAsJsonAsync("/api/prompt-configurations/fast/versions", new
        {
            model = "tiny",
            views = 16,
            steps = 2,
            learningRate = 0.01,
            design = "VLI",
            flagging = new { minimumConfidence = 0.3, flagChangedPrediction = false },
        }));
        Assert.Equal(2, v2.GetProperty("version").GetInt32());
        Assert.Equal(new[] { 1, 2 }, (await http.GetFromJsonAsync<int[]>("/api/prompt-configurations/fast/versions"))!);
        Assert.Equal(8, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-configurations/fast/versions/1")).GetProperty("views").GetInt32());
        Assert.Equal(16, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-configurations/fast")).GetProperty("views").GetInt32());
        var names = (await http.GetFromJsonAsync<JsonElement>("/api/prompt-configurations")).EnumerateArray().Select(c => c.GetProperty("name").GetString()).ToList();
        Assert.Equal(["default", "fast"], names);

        // Out-of-range settings are refused with the reason.
        var bad = await http.PostAsJsonAsync("/api/prompt-configurations/fast/versions", new { model = "tiny", steps = 1000 });
        await AssertProblem(bad, HttpStatusCode.BadRequest, "invalid_request", "steps");

        var jobId = (await Created(await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "fast" }))).GetProperty("jobId").GetString();
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}")).GetProperty("promptConfigurationVersion").GetInt32());
        await AssertProblem(await http.DeleteAsync("/api/prompt-configurations/fast/versions/2"), HttpStatusCode.Conflict, "conflict", jobId!);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-configurations/fast/versions/1")).StatusCode);
        (await http.PostAsync($"/api/jobs/{jobId}/cancel", null)).EnsureSuccessStatusCode();
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-configurations/fast")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/prompt-configurations/fast")).StatusCode);
    }

    [Fact]
    public async Task Keys_are_issued_rotated_and_revoked_and_listings_never_show_secrets()
    {
        var (tenantId, key) = await gateway.CreateTenantAsync(prefix: "keys");
        using var http = gateway.WithKey(key);
        var extra = await Created(await http.PostAsJsonAsync("/api/keys", new { name = "ci" }));
        var extraSecret = extra.GetProperty("secret").GetString()!;
        Assert.StartsWith($"tapt.{tenantId}.", extraSecret);
        var keys = await http.GetFromJsonAsync<JsonElement>("/api/keys");
        Assert.Equal(2, keys.GetArrayLength());
        Assert.DoesNotContain("secret", keys.GetRawText(), StringComparison.OrdinalIgnoreCase);

        // Rotation: a new key with the same name; the old one stops working at once.
        var rotated = await Created(await http.PostAsync($"/api/keys/{extra.GetProperty("keyId").GetString()}/rotate", null));
        var newSecret = rotated.GetProperty("key").GetProperty("secret").GetString()!;
        Assert.Equal("ci", rotated.GetProperty("key").GetProperty("name").GetString());
        using (var old = gateway.WithKey(extraSecret)) Assert.Equal(HttpStatusCode.Unauthorized, (await old.GetAsync("/api/jobs")).StatusCode);
        using (var fresh = gateway.WithKey(newSecret)) Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/api/jobs")).StatusCode);

        // The operator revokes any tenant's key; listing shows when.
        using var op = gateway.Operator();
        var newKeyId = rotated.GetProperty("key").GetProperty("keyId").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/api/tenants/{tenantId}/keys/{newKeyId}")).StatusCode);
        using (var revoked = gateway.WithKey(newSecret)) Assert.Equal(HttpStatusCode.Unauthorized, (await revoked.GetAsync("/api/jobs")).StatusCode);
        var listed = await op.GetFromJsonAsync<JsonElement>($"/api/tenants/{tenantId}/keys");
        Assert.Equal(2, listed.EnumerateArray().Count(k => k.GetProperty("revokedAt").ValueKind != JsonValueKind.Null));
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync("/api/tenants", new { id = tenantId })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync("/api/tenants", new { id = "Not A Tenant" })).StatusCode);
    }

    [Fact]
    public async Task A_full_tenant_gets_a_storage_limit_error_and_its_keys_stay_revocable()
    {
        var (tenantId, key) = await gateway.CreateTenantAsync(prefix: "full");
        using var http = gateway.WithKey(key);
        var huge = Enumerable.Range(0, 1000).Select(i => new { label = $"label {i}", promptText = new string('p', 500) }).ToArray();
        Assert.Equal(HttpStatusCode.Created, (await http.PostAsJsonAsync("/api/vocabularies", new { name = "huge", labels = huge })).StatusCode);
        HttpResponseMessage refused;
        var versions = 1;
        do
        {
            huge[0] = new { label = $"label round {versions}", promptText = huge[0].promptText };
            refused = await http.PostAsJsonAsync("/api/vocabularies/huge/versions", new { labels = huge });
        }
        while (refused.StatusCode == HttpStatusCode.Created && ++versions < 50);
        await AssertProblem(refused, HttpStatusCode.Conflict, "quota_storage", "bytes");
        Assert.InRange(versions * 500_000L, GatewayFixture.VocabularyBytesLimit / 2, GatewayFixture.VocabularyBytesLimit);
        Assert.Equal(versions, (await http.GetFromJsonAsync<int[]>("/api/vocabularies/huge/versions"))!.Length);

        // The operator's revocation is independent of what the tenant stored.
        using var op = gateway.Operator();
        var keyId = (await op.GetFromJsonAsync<JsonElement>($"/api/tenants/{tenantId}/keys")).EnumerateArray().Single().GetProperty("keyId").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/api/tenants/{tenantId}/keys/{keyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/vocabularies")).StatusCode);
    }

    [Fact]
    public async Task Health_openapi_and_prometheus_metrics_are_served()
    {
        using var http = gateway.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
        Assert.Equal("Healthy", await http.GetStringAsync("/health/ready"));
        var openapi = await http.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = openapi.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Contains("/api/jobs/{jobId}/images", paths);
        Assert.Contains("/api/audit/{jobId}/{index}", paths);
        Assert.Contains("/api/vocabularies/{name}/versions/{version}", paths);
        Assert.Contains("/api/tenants", paths);
        // /metrics names every tenant: the operator's only.
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/metrics")).StatusCode);
        var (_, tenantKey) = await gateway.CreateTenantAsync(prefix: "metrics");
        using (var tenant = gateway.WithKey(tenantKey)) Assert.Equal(HttpStatusCode.Forbidden, (await tenant.GetAsync("/metrics")).StatusCode);
        using var op = gateway.Operator();
        var metrics = await op.GetStringAsync("/metrics");
        Assert.Contains("http_server_request_duration_seconds", metrics);
        var console = await http.GetAsync("/");
        Assert.Equal("text/html", console.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'self'", console.Headers.GetValues("Content-Security-Policy").Single());
    }

    internal static async Task<JsonElement> Created(HttpResponseMessage response)
    {
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Asserts an RFC 7807 problem with the status, the stable code and (optionally) a word in its detail.</summary>
    internal static async Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string code, string? detailContains = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.Equal(code, problem.GetProperty("code").GetString());
        if (detailContains is not null) Assert.Contains(detailContains, problem.GetProperty("detail").GetString());
        return problem;
    }
}
