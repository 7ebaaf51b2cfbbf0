using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Robustness evaluations on the SignalR hub: snapshot, live progress, and tenant isolation.</summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationLiveTests(GatewayFixture gateway)
{
    /// <summary>Creates an evaluation of <paramref name="images"/> Fashion-MNIST test images (labelled) and returns its id.</summary>
    internal static async Task<string> CreateEvaluationAsync(HttpClient http, int[] images, double[] epsilons, int steps = 2, string? name = null,
        string attack = "pgd", int queries = 5000, string promptConfiguration = "default")
    {
        var created = await http.PostAsJsonAsync("/api/evaluations", new
        {
            vocabulary = "fashion",
            promptConfiguration,
            attack,
            queries,
            epsilons,
            steps,
            seed = 1,
            batchSize = 4,
            name,
        });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var jobId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
        var content = new MultipartFormDataContent();
        foreach (var i in images)
        {
            var part = new ByteArrayContent(TestModels.FashionPng(i));
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            content.Add(part, TestModels.FashionLabels[TestModels.FashionTest.Labels[i]], $"fashion-{i}.png");
        }
        var upload = await http.PostAsync($"/api/evaluations/{jobId}/images", content);
        Assert.True(upload.IsSuccessStatusCode, await upload.Content.ReadAsStringAsync());
        return jobId;
    }

    [Fact]
    public async Task A_subscriber_follows_an_evaluation_live_and_another_tenant_cannot()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("evlive");
        using var _ = http;
        var jobId = await CreateEvaluationAsync(http, [0, 1, 2, 3], [2.0 / 255]);

        await using var client = await LiveEventsTests.LiveClient.ConnectAsync(gateway, key);
        var snapshot = await client.SubscribeAsync(jobId);
        Assert.Equal(JobState.Open, snapshot.Job.State);
        Assert.Equal(4, snapshot.Job.Counts.Total);
        Assert.NotNull(snapshot.Evaluation);
        Assert.Equal(4, snapshot.Evaluation!.Images);
        Assert.Equal("pgd", snapshot.Evaluation.Request.Attack);

        // Another tenant: the same "not found" as for a missing evaluation, and no events.
        var (_, otherKey, otherHttp) = await gateway.TenantWithSetupAsync("evlive-other");
        using var __ = otherHttp;
        await using var intruder = await LiveEventsTests.LiveClient.ConnectAsync(gateway, otherKey);
        var foreign = await Assert.ThrowsAsync<HubException>(() => intruder.SubscribeAsync(jobId));
        var missing = await Assert.ThrowsAsync<HubException>(() => intruder.SubscribeAsync("eval-" + Guid.NewGuid().ToString("N")));
        Assert.Contains("not found", foreign.Message, StringComparison.Ordinal);
        Assert.Contains("not found", missing.Message, StringComparison.Ordinal);

        (await http.PostAsync($"/api/evaluations/{jobId}/start", null)).EnsureSuccessStatusCode();
        var final = await client.Final.Task.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(JobState.Completed, final.State);
        Assert.Equal(4, final.Total);
        Assert.Equal(4, final.Completed);
        var completed = client.Progress.Select(p => p.Completed).ToList();
        Assert.Equal(completed.Order(), completed);
        Assert.Contains(client.Progress, p => p.State == JobState.Running);
        Assert.Empty(intruder.Progress);

        // A late subscriber gets the finished state; unsubscribe is accepted; the evaluation is listed.
        await using var late = await LiveEventsTests.LiveClient.ConnectAsync(gateway, key);
        var after = await late.SubscribeAsync(jobId);
        Assert.Equal(JobState.Completed, after.Job.State);
        Assert.Equal(4, after.Job.Counts.Completed);
        await late.Connection.InvokeAsync("Unsubscribe", jobId);
        var list = await http.GetFromJsonAsync<JsonElement>("/api/evaluations");
        Assert.Contains(list.EnumerateArray(), e => e.GetProperty("jobId").GetString() == jobId);
        Assert.DoesNotContain((await otherHttp.GetFromJsonAsync<JsonElement>("/api/evaluations")).EnumerateArray(), e => e.GetProperty("jobId").GetString() == jobId);
    }
}
