using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.DependencyInjection;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Tenants' own prompt artifacts through the HTTP API, on the tiny model.</summary>
[Collection(GatewayCollection.Name)]
public sealed class PromptArtifactTests(GatewayFixture gateway)
{
    public static ByteArrayContent Body(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    public static async Task<JsonElement> UploadAsync(HttpClient http, string name, byte[] bytes, string model = TestModels.Tiny)
    {
        var response = await http.PostAsync($"/api/prompt-artifacts/{name}?model={model}", Body(bytes));
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Fact]
    public async Task A_tenant_uploads_lists_downloads_uses_in_a_job_and_deletes_its_own_artifact()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("art");
        var original = PromptArtifactFiles.TinyDefault();
        var different = PromptArtifactFiles.Different(original);

        var v1 = await UploadAsync(http, "mine", different);
        Assert.Equal(1, v1.GetProperty("version").GetInt32());
        Assert.Equal("tenant", v1.GetProperty("owner").GetString());
        Assert.Equal("VLI", v1.GetProperty("design").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(different)), v1.GetProperty("sha256").GetString());
        Assert.Equal(different.Length, v1.GetProperty("bytes").GetInt64());
        var v2 = await UploadAsync(http, "mine", original);
        Assert.Equal(2, v2.GetProperty("version").GetInt32());

        var own = await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts");
        Assert.Equal([1, 2], own.EnumerateArray().Select(a => a.GetProperty("version").GetInt32()));
        // With the model named, the operator's artifacts of that model are listed too (every tenant sees them).
        var forModel = await http.GetFromJsonAsync<JsonElement>($"/api/prompt-artifacts?model={TestModels.Tiny}");
        var operators = forModel.EnumerateArray().Where(a => a.GetProperty("owner").GetString() == "operator").ToList();
        Assert.Equal("tapt-prompts", Assert.Single(operators).GetProperty("name").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(original)), operators[0].GetProperty("sha256").GetString());
        Assert.Equal(3, forModel.GetArrayLength());

        Assert.Equal(different, await http.GetByteArrayAsync("/api/prompt-artifacts/mine/versions/1/content"));
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts/mine")).GetProperty("version").GetInt32());
        Assert.Equal(2, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts/mine/versions")).GetArrayLength());

        // A prompt configuration pins version 1 (its checksum recorded); a job on it runs with that artifact.
        var configured = await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "own", model = TestModels.Tiny, promptArtifact = "mine", promptArtifactVersion = 1 });
        Assert.Equal(HttpStatusCode.Created, configured.StatusCode);
        Assert.Equal(v1.GetProperty("sha256").GetString(), (await configured.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("promptArtifactSha256").GetString());
        var job = await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "own" });
        var jobId = (await job.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages([0, 1, 2]));
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var done = await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(2));
        Assert.Equal(3, done.GetProperty("counts").GetProperty("succeeded").GetInt32());
        var detail = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}/results/0");
        Assert.Equal("mine@v1", detail.GetProperty("outcome").GetProperty("promptArtifact").GetString());
        // The accelerator silo fetched it into its local cache, under its checksum, and keeps it loaded for the model.
        var silo = gateway.Factory.Services;
        Assert.True(File.Exists(Path.Combine(silo.GetRequiredService<TenantArtifactCache>().Directory, v1.GetProperty("sha256").GetString()!)));
        using (var model = silo.GetRequiredService<ModelCatalog>().Rent(TestModels.Tiny, TorchSharp.torch.CPU))
            Assert.True(model.Value.TenantArtifacts.Count >= 1);

        // Version 1 is referenced by the configuration: refused; version 2 is not: deleted, its number not given again.
        var refused = await http.DeleteAsync("/api/prompt-artifacts/mine/versions/1");
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("prompt configuration 'own' v1", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-artifacts/mine/versions/2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/prompt-artifacts/mine/versions/2")).StatusCode);
        Assert.Equal(3, (await UploadAsync(http, "mine", original)).GetProperty("version").GetInt32());
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-configurations/own")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/prompt-artifacts/mine")).StatusCode);
        Assert.Equal(0, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts")).GetArrayLength());
    }

    [Fact]
    public async Task Uploads_that_are_not_a_fitting_artifact_get_a_problem_naming_why_and_leave_nothing_behind()
    {
        var (tenantId, _, http) = await gateway.TenantWithSetupAsync("art-bad");
        var good = PromptArtifactFiles.TinyDefault();
        var cases = new (string Name, byte[] Bytes, string Model, int Status, string Reason)[]
        {
            ("garbage", "not a safetensors file at all"u8.ToArray(), TestModels.Tiny, 400, "safetensors header length"),
            ("too-short", [1, 2, 3], TestModels.Tiny, 400, "too short"),
            ("truncated", good[..^16], TestModels.Tiny, 400, "header describes"),
            ("padded", [.. good, 0, 0, 0, 0], TestModels.Tiny, 400, "header describes"),
            ("other-model", PromptArtifactFiles.WithHeader(good, (_, t) => t["model_checksum"] = "sha256:" + new string('0', 64)), TestModels.Tiny, 400, "belongs to the model with checksum"),
            ("wrong-shape", PromptArtifactFiles.WithHeader(good, (_, t) => t["tokens_per_layer"] = t["tokens_per_layer"]!.GetValue<int>() + 1), TestModels.Tiny, 400, "has shape"),
            ("bad-dtype", PromptArtifactFiles.WithHeader(good, (h, _) => h["prompts.adv.visual.0"]!["dtype"] = "I32"), TestModels.Tiny, 400, "dtype I32"),
            ("extra-tensor", PromptArtifactFiles.WithHeader(good, (h, _) => { var t = h["stats.adv.mean"]!; h.Remove("stats.adv.mean"); h["evil"] = t; }), TestModels.Tiny, 400, "unexpected tensor 'evil'"),
            ("overlap", PromptArtifactFiles.WithHeader(good, (h, _) => h["prompts.adv.visual.0"]!["data_offsets"] = new JsonArray(0, h["prompts.adv.visual.0"]!["data_offsets"]![1]!.GetValue<long>() - h["prompts.adv.visual.0"]!["data_offsets"]![0]!.GetValue<long>())), TestModels.Tiny, 400, "overlap"),
            ("no-tapt", PromptArtifactFiles.WithHeader(good, (h, _) => h.Remove("__metadata__")), TestModels.Tiny, 400, "not a TAPT prompt artifact"),
            ("version-9", PromptArtifactFiles.WithHeader(good, (_, t) => t["format_version"] = 9), TestModels.Tiny, 400, "format version 9"),
            ("unknown-model", good, "no-such-model", 400, "unknown model 'no-such-model'"),
            ("too-large", new byte[GatewayFixture.PromptArtifactBytesLimit + 1], TestModels.Tiny, 413, "at most"),
        };
        var failures = new List<string>();
        foreach (var (name, bytes, model, status, reason) in cases)
        {
            using var response = await http.PostAsync($"/api/prompt-artifacts/{name}?model={model}", Body(bytes));
            var body = await response.Content.ReadAsStringAsync();
            if ((int)response.StatusCode != status || !body.Contains(reason, StringComparison.Ordinal) || !body.Contains("\"code\"", StringComparison.Ordinal))
                failures.Add($"{name}: {(int)response.StatusCode} {body}");
        }
        var noModel = await http.PostAsync("/api/prompt-artifacts/x", Body(good));
        if (noModel.StatusCode != HttpStatusCode.BadRequest) failures.Add($"no model: {noModel.StatusCode}");
        var missing = await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "dangling", model = TestModels.Tiny, promptArtifact = "nothing", promptArtifactVersion = 1 });
        if (missing.StatusCode != HttpStatusCode.BadRequest) failures.Add($"configuration on a missing artifact: {missing.StatusCode} {await missing.Content.ReadAsStringAsync()}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));

        Assert.Equal(0, (await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts")).GetArrayLength());
        var container = new BlobServiceClient(gateway.Storage.ConnectionString).GetBlobContainerClient("tenant-" + tenantId);
        var left = new List<string>();
        if (await container.ExistsAsync())
            await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = "staging/prompts/" })) left.Add(blob.Name);
        Assert.Empty(left);
    }

    [Fact]
    public async Task Another_tenant_can_neither_see_nor_use_nor_delete_an_artifact()
    {
        var (_, _, alice) = await gateway.TenantWithSetupAsync("art-alice");
        await UploadAsync(alice, "private", PromptArtifactFiles.TinyDefault());
        var (_, _, bob) = await gateway.TenantWithSetupAsync("art-bob");

        Assert.Equal(0, (await bob.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts")).GetArrayLength());
        Assert.All((await bob.GetFromJsonAsync<JsonElement>($"/api/prompt-artifacts?model={TestModels.Tiny}")).EnumerateArray(),
            a => Assert.Equal("operator", a.GetProperty("owner").GetString()));
        foreach (var path in new[] { "/api/prompt-artifacts/private", "/api/prompt-artifacts/private/versions", "/api/prompt-artifacts/private/versions/1", "/api/prompt-artifacts/private/versions/1/content" })
            Assert.Equal(HttpStatusCode.NotFound, (await bob.GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bob.DeleteAsync("/api/prompt-artifacts/private/versions/1")).StatusCode);
        var borrowed = await bob.PostAsJsonAsync("/api/prompt-configurations", new { name = "borrowed", model = TestModels.Tiny, promptArtifact = "private", promptArtifactVersion = 1 });
        Assert.Equal(HttpStatusCode.BadRequest, borrowed.StatusCode);
        Assert.Equal(1, (await alice.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts")).GetArrayLength());
    }

    [Fact]
    public async Task Evaluations_on_the_same_images_compare_the_default_artifact_with_the_tenants_own()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("art-eval");
        var own = await UploadAsync(http, "tuned", PromptArtifactFiles.Different(PromptArtifactFiles.TinyDefault()));
        (await http.PostAsJsonAsync("/api/prompt-configurations", new { name = "own", model = TestModels.Tiny, promptArtifact = "tuned", promptArtifactVersion = 1 })).EnsureSuccessStatusCode();
        var reports = new Dictionary<string, JsonElement>();
        foreach (var configuration in new[] { "default", "own" })
        {
            var created = await http.PostAsJsonAsync("/api/evaluations", new
            {
                vocabulary = "fashion",
                promptConfiguration = configuration,
                attack = "pgd",
                epsilons = new[] { 2.0 / 255 },
                steps = 2,
                seed = 5,
                batchSize = 4,
            });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var jobId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
            var content = new MultipartFormDataContent();
            foreach (var i in new[] { 0, 1, 2, 3 })
            {
                var part = new ByteArrayContent(TestModels.FashionPng(i));
                part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
                content.Add(part, TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], $"fashion-{i}.png");
            }
            (await http.PostAsync($"/api/evaluations/{jobId}/images", content)).EnsureSuccessStatusCode();
            (await http.PostAsync($"/api/evaluations/{jobId}/start", null)).EnsureSuccessStatusCode();
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while ((await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}")).GetProperty("state").GetString() is not ("completed" or "cancelled"))
            {
                Assert.True(DateTime.UtcNow < deadline, "evaluation did not finish");
                await Task.Delay(200);
            }
            reports[configuration] = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{jobId}/report");
        }
        var pinnedDefault = reports["default"].GetProperty("pinned");
        var pinnedOwn = reports["own"].GetProperty("pinned");
        Assert.Equal("tapt-prompts.safetensors", pinnedDefault.GetProperty("promptArtifact").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(PromptArtifactFiles.TinyDefault())), pinnedDefault.GetProperty("promptArtifactSha256").GetString());
        Assert.Equal("tuned@v1", pinnedOwn.GetProperty("promptArtifact").GetString());
        Assert.Equal(own.GetProperty("sha256").GetString(), pinnedOwn.GetProperty("promptArtifactSha256").GetString());
        // Both reports cover the same four images with every method's outcome.
        Assert.All(reports.Values, r => Assert.Equal(4, r.GetProperty("images").GetArrayLength()));
    }

    [Fact]
    public async Task The_cli_client_uploads_lists_downloads_and_deletes_artifacts()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("art-cli");
        http.Dispose();
        var folder = Directory.CreateTempSubdirectory("tapt-cli-artifacts-").FullName;
        try
        {
            var file = Path.Combine(folder, "mine.safetensors");
            await File.WriteAllBytesAsync(file, PromptArtifactFiles.TinyDefault());
            using var client = new TaptPlatform.Cli.Commands.GatewayClient(gateway.BaseAddress.ToString(), key);
            var uploaded = await client.UploadPromptArtifactAsync("from-cli", TestModels.Tiny, file, CancellationToken.None);
            Assert.StartsWith("from-cli v1 (tenant) model tiny design VLI", TaptPlatform.Cli.Commands.PromptsRemoteCommand.Describe(uploaded));
            var listed = await client.ListPromptArtifactsAsync(TestModels.Tiny, CancellationToken.None);
            Assert.Equal(["tapt-prompts", "from-cli"], listed.EnumerateArray().Select(a => a.GetProperty("name").GetString()));
            using (var copy = new MemoryStream())
            {
                await client.DownloadPromptArtifactAsync("from-cli", 1, copy, CancellationToken.None);
                Assert.Equal(PromptArtifactFiles.TinyDefault(), copy.ToArray());
            }
            await client.DeletePromptArtifactAsync("from-cli", 1, CancellationToken.None);
            var gone = await Assert.ThrowsAsync<TaptPlatform.Cli.Commands.GatewayException>(() => client.DownloadPromptArtifactAsync("from-cli", 1, Stream.Null, CancellationToken.None));
            Assert.Contains("404", gone.Message);
            var refused = await Assert.ThrowsAsync<TaptPlatform.Cli.Commands.GatewayException>(() => client.UploadPromptArtifactAsync("x", "no-such-model", file, CancellationToken.None));
            Assert.Contains("unknown model 'no-such-model'", refused.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
