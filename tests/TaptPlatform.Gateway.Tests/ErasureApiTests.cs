using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Tenant erasure through the API: operator only, keys refused at once, progress, a verifiable summary, nothing left.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ErasureApiTests(GatewayFixture gateway)
{
    [Fact]
    public async Task The_operator_erases_a_tenant_whose_keys_answer_401_at_once_and_afterwards_storage_holds_nothing_of_it()
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("erase-api", minimumConfidence: 1.0, steps: 2, views: 16);
        using var _ = http;
        // A finished job with a verdict on a flagged image, a prompt artifact, an evaluation, and a second job left running.
        var jobId = await GatewayFixture.CreateJobAsync(http, "finished");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([40, 41]));
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        (await http.PostAsJsonAsync($"/api/audit/{jobId}/0/reviews", new { verdict = "confirmed-attack", note = "seen" })).EnsureSuccessStatusCode();
        await PromptArtifactTests.UploadAsync(http, "mine", PromptArtifactFiles.TinyDefault());
        var evaluation = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", epsilons = new[] { 1.0 / 255 }, steps = 1 });
        Assert.Equal(HttpStatusCode.Created, evaluation.StatusCode);
        var evaluationId = (await evaluation.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
        var runningId = await GatewayFixture.CreateJobAsync(http, "running");
        await GatewayFixture.UploadAsync(http, runningId, GatewayFixture.FashionImages(Enumerable.Range(50, 30)));
        (await http.PostAsync($"/api/jobs/{runningId}/start", null)).EnsureSuccessStatusCode();
        var (otherId, otherKey) = await gateway.CreateTenantAsync(prefix: "erase-keep");

        // Operator only: a tenant key (even the tenant's own) is forbidden, no key is unauthenticated.
        using var op = gateway.Operator();
        using var anonymous = gateway.Anonymous();
        using var otherTenant = gateway.WithKey(otherKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.DeleteAsync($"/api/tenants/{tenantId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await otherTenant.DeleteAsync($"/api/tenants/{tenantId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.GetAsync($"/api/tenants/{tenantId}/erasure")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.DeleteAsync($"/api/tenants/{tenantId}")).StatusCode);
        // An unknown tenant, and a tenant that is not being erased: 404 problems.
        var unknown = await op.DeleteAsync("/api/tenants/no-such-tenant-anywhere");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await op.DeleteAsync("/api/tenants/Not_An-Id")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await op.GetAsync($"/api/tenants/{tenantId}/erasure")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/jobs")).StatusCode);

        var accepted = await op.DeleteAsync($"/api/tenants/{tenantId}");
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal($"/api/tenants/{tenantId}/erasure", accepted.Headers.Location?.OriginalString);
        // At once: the tenant's key is refused everywhere, and the operator cannot give it a new one.
        foreach (var path in new[] { "/api/jobs", $"/api/jobs/{jobId}", $"/api/jobs/{jobId}/results", "/api/keys", "/api/trail", "/api/evaluations", "/api/usage", "/api/audit" })
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "default" })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/tenants/{tenantId}/keys", new { name = "again" })).StatusCode);

        var status = await WaitForDoneAsync(op, tenantId, TimeSpan.FromMinutes(2));
        var summary = status.GetProperty("summary");
        Assert.Equal(tenantId, summary.GetProperty("tenantId").GetString());
        var blobs = summary.GetProperty("blobs");
        Assert.True(blobs.GetProperty("inputs").GetInt64() >= 2 + 30);
        Assert.Equal(1, blobs.GetProperty("reviews").GetInt64());
        Assert.Equal(1, blobs.GetProperty("prompt-artifacts").GetInt64());
        Assert.True(blobs.GetProperty("trail").GetInt64() >= 1);
        Assert.Equal(2, summary.GetProperty("grainStates").GetProperty("job").GetInt64());
        Assert.Equal(1, summary.GetProperty("grainStates").GetProperty("evaluation").GetInt64());
        Assert.Equal(1, summary.GetProperty("grainStates").GetProperty("prompt-artifacts").GetInt64());
        Assert.Equal(2, summary.GetProperty("tableRows").GetProperty("job-index").GetInt64());

        // The summary verifies; altered, it does not.
        var verified = await (await op.PostAsJsonAsync("/api/erasures/verify", summary)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(verified.GetProperty("valid").GetBoolean());
        var altered = JsonNode.Parse(summary.GetRawText())!;
        altered["blobs"]!["inputs"] = 1;
        var refused = await (await op.PostAsJsonAsync("/api/erasures/verify", altered)).Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(refused.GetProperty("valid").GetBoolean());
        Assert.Equal(HttpStatusCode.BadRequest, (await op.PostAsJsonAsync("/api/erasures/verify", new { tenantId })).StatusCode);

        // Idempotent, and the id is not taken again.
        var again = await op.DeleteAsync($"/api/tenants/{tenantId}");
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        var repeated = await again.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(summary.GetProperty("signature").GetString(), repeated.GetProperty("summary").GetProperty("signature").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync("/api/tenants", new { id = tenantId })).StatusCode);

        // Nothing in the account names the tenant or its jobs but the operator's two records (reminders included).
        Assert.Equal(StorageListing.OperatorRecords(tenantId),
            await StorageListing.ObjectsNamingAsync(gateway.Storage.ConnectionString, [tenantId, jobId, runningId, evaluationId]));
        // The other tenant still works.
        Assert.Equal(HttpStatusCode.OK, (await otherTenant.GetAsync("/api/jobs")).StatusCode);
    }

    [Fact]
    public async Task The_cli_erases_a_tenant_waits_saves_the_summary_and_verifies_it_and_an_altered_copy_fails()
    {
        var (tenantId, key) = await gateway.CreateTenantAsync(prefix: "erase-cli");
        var file = Path.Combine(Directory.CreateTempSubdirectory("tapt-erasure-").FullName, "summary.json");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var stdout = new StringWriter();
        Assert.Equal(0, await ErasureCommand.StartAsync(gateway.BaseAddress.ToString(), GatewayFixture.OperatorKey, tenantId, wait: true, file, stdout, timeout.Token));
        Assert.Contains($"tenant {tenantId}: done", stdout.ToString());
        Assert.Contains("summary written to", stdout.ToString());
        using (var http = gateway.WithKey(key)) Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/keys")).StatusCode);

        var verified = new StringWriter();
        Assert.Equal(0, await ErasureCommand.VerifyAsync(gateway.BaseAddress.ToString(), GatewayFixture.OperatorKey, file, verified, timeout.Token));
        Assert.StartsWith("valid:", verified.ToString());
        var altered = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
        altered["finished"] = DateTimeOffset.UtcNow.AddDays(1).ToString("O");
        await File.WriteAllTextAsync(file, altered.ToJsonString());
        var refused = new StringWriter();
        Assert.Equal(1, await ErasureCommand.VerifyAsync(gateway.BaseAddress.ToString(), GatewayFixture.OperatorKey, file, refused, timeout.Token));
        Assert.StartsWith("NOT VALID:", refused.ToString());
        // A tenant key is not the operator's: a one-line error naming the status.
        var (_, otherKey) = await gateway.CreateTenantAsync(prefix: "erase-cli-other");
        var denied = await Assert.ThrowsAsync<GatewayException>(() =>
            ErasureCommand.StartAsync(gateway.BaseAddress.ToString(), otherKey, tenantId, false, null, new StringWriter(), timeout.Token));
        Assert.Contains("403", denied.Message);
    }

    private static async Task<JsonElement> WaitForDoneAsync(HttpClient op, string tenantId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var status = await op.GetFromJsonAsync<JsonElement>($"/api/tenants/{tenantId}/erasure");
            if (status.GetProperty("phase").GetString() == "done") return status;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the erasure is not done after {timeout}: {status}");
            await Task.Delay(250);
        }
    }
}
