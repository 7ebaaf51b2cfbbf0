using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Live;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Prompt training jobs through the HTTP API and the hub, on the tiny model: train, watch, use the artifact, compare it in evaluations.</summary>
[Collection(GatewayCollection.Name)]
public sealed class PromptTrainingApiTests(GatewayFixture gateway)
{
    /// <summary>The first <paramref name="perClass"/> Fashion-MNIST test images of every class.</summary>
    public static int[] PerClass(int perClass) =>
        [.. Enumerable.Range(0, 10).SelectMany(c => Enumerable.Range(0, TestModels.FashionTest.Count).Where(i => TestModels.FashionTest.Labels[i] == c).Take(perClass))];

    /// <summary>One file part per image, named by its label (or by <paramref name="label"/>).</summary>
    public static MultipartFormDataContent Labelled(IEnumerable<int> images, string? label = null)
    {
        var content = new MultipartFormDataContent();
        foreach (var i in images)
        {
            var part = new ByteArrayContent(TestModels.FashionPng(i));
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            content.Add(part, label ?? TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], $"fashion-{i}.png");
        }
        return content;
    }

    public static async Task<string> CreateAsync(HttpClient http, object body)
    {
        var created = await http.PostAsJsonAsync("/api/prompt-trainings", body);
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
    }

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{response.StatusCode}, expected {expected}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }

    [Fact]
    public async Task A_tenant_trains_prompts_watches_the_curve_live_configures_the_artifact_and_compares_it_with_the_default_in_evaluations()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("train");
        using var _ = http;
        var jobId = await CreateAsync(http, new { vocabulary = "fashion", model = TestModels.Tiny, artifactName = "trained", epochs = 1, shotsPerClass = 2, validationFraction = 0.3, batchSize = 8 });
        var upload = await http.PostAsync($"/api/prompt-trainings/{jobId}/images", Labelled(PerClass(3)));
        Assert.True(upload.IsSuccessStatusCode, await upload.Content.ReadAsStringAsync());
        Assert.Equal(30, (await upload.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("totalImages").GetInt32());

        await using var client = await LiveEventsTests.LiveClient.ConnectAsync(gateway, key);
        var snapshot = await client.Connection.InvokeAsync<PromptTrainingStatus>(JobsHubMethods.SubscribeTraining, jobId);
        Assert.Equal(JobState.Open, snapshot.State);
        Assert.Equal(2, snapshot.EpochsTotal);
        var started = await http.PostAsync($"/api/prompt-trainings/{jobId}/start", null);
        Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
        var final = await client.Final.Task.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(JobState.Completed, final.State);
        Assert.Equal(2, final.Completed);
        // Each epoch arrived live with its figures (adversarial, then clean prompts).
        var epochs = client.Progress.Where(p => p.Epoch is not null).Select(p => p.Epoch!).DistinctBy(e => (e.Prompts, e.Epoch)).ToList();
        Assert.Contains(epochs, e => e.Prompts == "adversarial" && e.Validation.Robust <= e.Validation.Clean && e.Validation.Images == 10);

        var status = await http.GetFromJsonAsync<JsonElement>($"/api/prompt-trainings/{jobId}", GatewayFixture.Json);
        Assert.Equal(2, status.GetProperty("curve").GetArrayLength());
        var artifact = status.GetProperty("artifact");
        Assert.Equal(("trained", 1), (artifact.GetProperty("name").GetString(), artifact.GetProperty("version").GetInt32()));
        var report = await http.GetFromJsonAsync<JsonElement>($"/api/prompt-trainings/{jobId}/report");
        Assert.InRange(report.GetProperty("before").GetProperty("clean").GetDouble(), 0, 1);
        Assert.InRange(report.GetProperty("after").GetProperty("robust").GetDouble(), 0, 1);
        var listed = await http.GetFromJsonAsync<JsonElement>("/api/prompt-artifacts");
        Assert.Contains(listed.EnumerateArray(), a => a.GetProperty("name").GetString() == "trained" && a.GetProperty("sha256").GetString() == artifact.GetProperty("sha256").GetString());

        // One call makes a prompt configuration version on the artifact.
        var configured = await http.PostAsJsonAsync($"/api/prompt-trainings/{jobId}/prompt-configuration", new { name = "trained" });
        Assert.True(configured.StatusCode == HttpStatusCode.Created, await configured.Content.ReadAsStringAsync());
        var configuration = await configured.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, configuration.GetProperty("promptArtifactVersion").GetInt32());
        Assert.Equal(artifact.GetProperty("sha256").GetString(), configuration.GetProperty("promptArtifactSha256").GetString());

        // The default artifact and the tenant's, each in an evaluation of the same images: the reports name each.
        var images = new[] { 0, 1, 2 };
        var evaluations = new List<string>();
        foreach (var config in new[] { "default", "trained" })
        {
            var id = await EvaluationLiveTests.CreateEvaluationAsync(http, images, [1.0 / 255], promptConfiguration: config);
            (await http.PostAsync($"/api/evaluations/{id}/start", null)).EnsureSuccessStatusCode();
            evaluations.Add(id);
        }
        var artifacts = new List<string>();
        foreach (var id in evaluations)
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            JsonElement s;
            while ((s = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{id}")).GetProperty("state").GetString() is "Running" or "running" && DateTime.UtcNow < deadline)
                await Task.Delay(200);
            Assert.Equal("completed", s.GetProperty("state").GetString()!.ToLowerInvariant());
            var r = await http.GetFromJsonAsync<JsonElement>($"/api/evaluations/{id}/report");
            artifacts.Add(r.GetProperty("pinned").GetProperty("promptArtifact").GetString()!);
        }
        Assert.Equal(["tapt-prompts.safetensors", "trained@v1"], artifacts);
    }

    [Fact]
    public async Task Bad_settings_labels_and_too_few_images_get_clear_problems_and_another_tenant_finds_nothing()
    {
        var (_, _, http) = await gateway.TenantWithSetupAsync("trainbad");
        using var _ = http;
        var valid = new Dictionary<string, object?> { ["vocabulary"] = "fashion", ["model"] = TestModels.Tiny, ["artifactName"] = "x" };
        async Task<string> Refused(string field, object? value, HttpStatusCode expected = HttpStatusCode.BadRequest)
        {
            var body = new Dictionary<string, object?>(valid) { [field] = value };
            var problem = await ProblemAsync(await http.PostAsJsonAsync("/api/prompt-trainings", body), expected);
            return problem.GetProperty("detail").GetString()!;
        }
        Assert.Contains("epochs must be in 1..50", await Refused("epochs", 0));
        Assert.Contains("epochs must be in 1..50", await Refused("epochs", 51));
        Assert.Contains("epsilon must be in", await Refused("epsilon", 0.5));
        Assert.Contains("epsilon must be in", await Refused("epsilon", 0));
        Assert.Contains("design must be", await Refused("design", "XL"));
        Assert.Contains("validationFraction", await Refused("validationFraction", 0.9));
        Assert.Contains("shotsPerClass", await Refused("shotsPerClass", 0));
        Assert.Contains("learningRate must be in (0, 1]", await Refused("learningRate", 2));
        Assert.Contains("not found", await Refused("vocabulary", "no-such-vocabulary", HttpStatusCode.NotFound));
        Assert.Contains("unknown model", await Refused("model", "no-such-model", HttpStatusCode.NotFound));
        await ProblemAsync(await http.PostAsync("/api/prompt-trainings", JsonContent.Create(new { vocabulary = "fashion" })), HttpStatusCode.BadRequest);

        var jobId = await CreateAsync(http, valid);
        var wrong = await ProblemAsync(await http.PostAsync($"/api/prompt-trainings/{jobId}/images", Labelled([0, 1], label: "not-a-label")), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("UnknownLabel", wrong.GetProperty("rejected")[0].GetProperty("reason").GetString());
        (await http.PostAsync($"/api/prompt-trainings/{jobId}/images", Labelled(PerClass(1)))).EnsureSuccessStatusCode();
        var few = await ProblemAsync(await http.PostAsync($"/api/prompt-trainings/{jobId}/start", null), HttpStatusCode.BadRequest);
        Assert.Contains("needs at least two", few.GetProperty("detail").GetString());
        var early = await ProblemAsync(await http.PostAsJsonAsync($"/api/prompt-trainings/{jobId}/prompt-configuration", new { }), HttpStatusCode.Conflict);
        Assert.Contains("only a completed one", early.GetProperty("detail").GetString());

        // Another tenant: every route of the job answers "not found", as for a missing one; its list does not show it.
        var (_, otherKey, other) = await gateway.TenantWithSetupAsync("trainother");
        using var __ = other;
        await using (var intruder = await LiveEventsTests.LiveClient.ConnectAsync(gateway, otherKey))
        {
            var missingId = "train-" + Guid.NewGuid().ToString("N");
            var foreign = await Assert.ThrowsAsync<HubException>(() => intruder.Connection.InvokeAsync<PromptTrainingStatus>(JobsHubMethods.SubscribeTraining, jobId));
            var missing = await Assert.ThrowsAsync<HubException>(() => intruder.Connection.InvokeAsync<PromptTrainingStatus>(JobsHubMethods.SubscribeTraining, missingId));
            Assert.Equal(missing.Message.Replace(missingId, "J"), foreign.Message.Replace(jobId, "J"));
            Assert.Contains("not found", foreign.Message);
        }
        foreach (var (method, path) in new[] { ("GET", ""), ("GET", "/report"), ("POST", "/start"), ("POST", "/cancel"), ("POST", "/prompt-configuration") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), $"/api/prompt-trainings/{jobId}{path}") { Content = method == "POST" ? JsonContent.Create(new { }) : null };
            var detail = await ProblemAsync(await other.SendAsync(request), HttpStatusCode.NotFound);
            Assert.DoesNotContain("trainbad", detail.ToString(), StringComparison.Ordinal);
        }
        await ProblemAsync(await other.PostAsync($"/api/prompt-trainings/{jobId}/images", Labelled(PerClass(2))), HttpStatusCode.NotFound);
        Assert.DoesNotContain((await other.GetFromJsonAsync<JsonElement>("/api/prompt-trainings")).EnumerateArray(), j => j.GetProperty("jobId").GetString() == jobId);
        Assert.Contains((await http.GetFromJsonAsync<JsonElement>("/api/prompt-trainings")).EnumerateArray(), j => j.GetProperty("jobId").GetString() == jobId);
        Assert.Equal("open", (await http.GetFromJsonAsync<JsonElement>($"/api/prompt-trainings/{jobId}")).GetProperty("state").GetString()!.ToLowerInvariant());
    }
}
