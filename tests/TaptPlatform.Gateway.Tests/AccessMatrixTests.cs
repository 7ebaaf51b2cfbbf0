using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>
/// Every operation of the gateway's own OpenAPI document against every kind of caller, so an endpoint is covered the
/// day it is added. Operations tagged "Operator" are the operator's; every other one is a tenant's. Path parameters are
/// filled with Alice's things (a parameter this test does not know fails it: give it a value here). Not in the
/// document, so not covered here: the hub (<c>SecurityTests</c>), health, <c>/metrics</c> (<c>ObservabilityTests</c>)
/// and the console's static files.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class AccessMatrixTests(GatewayFixture gateway)
{
    private sealed record Operation(string Method, string Template, bool IsOperators, bool IsShared);

    private sealed record Alice(string TenantId, string KeyId, string RevokedKey, string JobId, string EvaluationId, string TrainingId);

    [Fact]
    public async Task Every_openapi_operation_refuses_every_caller_that_is_not_its_owner()
    {
        var operations = await OperationsAsync();
        // The document describes the API only (the Orleans Dashboard, loopback-only, is kept out of it).
        Assert.All(operations, o => Assert.StartsWith("/api/", o.Template));
        Assert.Contains(operations, o => o.IsOperators);
        Assert.Contains(operations, o => o.Template == "/api/jobs/{jobId}");
        var alice = await AliceAsync();
        var (_, bobKey) = await gateway.CreateTenantAsync(prefix: "bob");
        var forged = new ApiKeySigner("a-signing-key-that-is-not-the-gateways-0123456789").Mint(alice.TenantId, alice.KeyId);
        var callers = new (string Name, string? Key)[]
        {
            ("no key", null), ("a malformed key", "tapt.not-a-key"), ("a forged key", forged), ("a revoked key", alice.RevokedKey),
            ("another tenant's key", bobKey), ("the operator key", GatewayFixture.OperatorKey),
        };
        var failures = new List<string>();
        foreach (var operation in operations)
        {
            var path = Fill(operation.Template, alice);
            foreach (var (name, key) in callers)
            {
                using var http = key is null ? gateway.Anonymous() : gateway.WithKey(key);
                using var request = new HttpRequestMessage(new HttpMethod(operation.Method), path);
                if (operation.Method is "POST" or "PUT" or "PATCH") request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                using var response = await http.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                var status = (int)response.StatusCode;
                var expected = Expected(operation, name, key, bobKey);
                if (!expected.Contains(status)) failures.Add($"{operation.Method} {operation.Template} with {name}: {status}, expected {string.Join('/', expected)}: {body}");
                if (name != "the operator key" && (body.Contains(alice.TenantId, StringComparison.Ordinal) && !operation.Template.Contains("{tenantId}", StringComparison.Ordinal) ||
                    body.Contains(alice.EvaluationId, StringComparison.Ordinal) && !path.Contains(alice.EvaluationId, StringComparison.Ordinal) ||
                    body.Contains(alice.TrainingId, StringComparison.Ordinal) && !path.Contains(alice.TrainingId, StringComparison.Ordinal)))
                    failures.Add($"{operation.Method} {operation.Template} with {name}: the body names Alice's things: {body}");
            }
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    /// <summary>
    /// Who gets what: without a valid key 401; the operator key on a tenant's route and a tenant key on the operator's
    /// 403; another tenant on Alice's things 404 (exactly as for things that do not exist) or, for a body this test
    /// cannot make valid, 400 — on a route without Alice's things it acts on its own, so any 2xx or 4xx but never 5xx.
    /// A shared route (the model registry's listing) answers every valid key alike.
    /// </summary>
    private static int[] Expected(Operation operation, string caller, string? key, string bobKey)
    {
        if (caller is "no key" or "a malformed key" or "a forged key" or "a revoked key") return [401];
        if (operation.IsOperators) return key == bobKey ? [403] : [200, 201, 202, 204, 400, 404, 409];
        if (operation.IsShared) return [200, 404];
        if (key == GatewayFixture.OperatorKey) return [403];
        return operation.Template.Contains('{') ? [400, 404, 415] : [200, 201, 400, 404, 415, 422];
    }

    private static string Fill(string template, Alice alice)
    {
        var evaluation = template.StartsWith("/api/evaluations", StringComparison.Ordinal);
        var training = template.StartsWith("/api/prompt-trainings", StringComparison.Ordinal);
        var path = System.Text.RegularExpressions.Regex.Replace(template, "{([^}]+)}", m => m.Groups[1].Value switch
        {
            "tenantId" => alice.TenantId,
            "keyId" => alice.KeyId,
            "name" => "alice-only",
            "version" => "1",
            "jobId" => evaluation ? alice.EvaluationId : training ? alice.TrainingId : alice.JobId,
            "index" => "0",
            "path" => "originals/00000.png",
            var unknown => throw new InvalidOperationException($"{template}: no value for the path parameter '{unknown}': add one to {nameof(AccessMatrixTests)}"),
        });
        return path;
    }

    private async Task<List<Operation>> OperationsAsync()
    {
        using var http = gateway.Anonymous();
        var document = await http.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var operations = new List<Operation>();
        foreach (var path in document.GetProperty("paths").EnumerateObject())
            foreach (var method in path.Value.EnumerateObject().Where(m => m.Name is "get" or "post" or "put" or "patch" or "delete"))
            {
                var tags = method.Value.TryGetProperty("tags", out var t) ? t.EnumerateArray().Select(x => x.GetString()).ToList() : [];
                operations.Add(new Operation(method.Name.ToUpperInvariant(), path.Name, tags.Contains("Operator"), tags.Contains("Shared")));
            }
        return operations;
    }

    /// <summary>A tenant with a vocabulary, prompt configuration and prompt artifact of her own, a job, an evaluation, a prompt training job and a revoked key.</summary>
    private async Task<Alice> AliceAsync()
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("alice-matrix");
        using var _ = http;
        (await http.PostAsJsonAsync("/api/vocabularies", new { name = "alice-only", labels = new[] { "x", "y" } })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "alice-only", model = "tiny" })).EnsureSuccessStatusCode();
        await PromptArtifactTests.UploadAsync(http, "alice-only", PromptArtifactFiles.TinyDefault());
        var jobId = await GatewayFixture.CreateJobAsync(http);
        var evaluation = await http.PostAsJsonAsync("/api/evaluations", new { vocabulary = "fashion", promptConfiguration = "default", attack = "pgd", epsilons = new[] { 1.0 / 255 }, steps = 1 });
        var evaluationId = (await evaluation.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
        var trainingId = await PromptTrainingApiTests.CreateAsync(http, new { vocabulary = "fashion", model = "tiny", artifactName = "alice-only" });
        var keyId = (await http.GetFromJsonAsync<JsonElement>("/api/keys"))[0].GetProperty("keyId").GetString()!;
        var doomed = await (await http.PostAsJsonAsync("/api/keys", new { name = "doomed" })).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync($"/api/keys/{doomed.GetProperty("keyId").GetString()}")).StatusCode);
        return new Alice(tenantId, keyId, doomed.GetProperty("secret").GetString()!, jobId, evaluationId, trainingId);
    }
}
