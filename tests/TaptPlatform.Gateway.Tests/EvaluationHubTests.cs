using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Live;
using TaptPlatform.Gateway.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Evaluations have their own hub path (SubscribeEvaluation) apart from jobs': each path follows only its own kind.</summary>
[Collection(GatewayCollection.Name)]
public sealed class EvaluationHubTests(GatewayFixture gateway)
{
    [Fact]
    public async Task SubscribeEvaluation_follows_an_evaluation_and_each_path_refuses_the_other_kind()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("evhub");
        using var _ = http;
        var evaluationId = await EvaluationLiveTests.CreateEvaluationAsync(http, [0, 1], [2.0 / 255], steps: 1);
        var jobId = await GatewayFixture.CreateJobAsync(http, "a job");

        await using var client = await LiveEventsTests.LiveClient.ConnectAsync(gateway, key);
        var snapshot = await client.Connection.InvokeAsync<JobSnapshot>(JobsHubMethods.SubscribeEvaluation, evaluationId);
        Assert.Equal(evaluationId, snapshot.Evaluation!.JobId);
        Assert.Equal(2, snapshot.Job.Counts.Total);
        var notAnEvaluation = await Assert.ThrowsAsync<HubException>(() => client.Connection.InvokeAsync<JobSnapshot>(JobsHubMethods.SubscribeEvaluation, jobId));
        Assert.Contains("not found", notAnEvaluation.Message, StringComparison.Ordinal);
        var job = await client.SubscribeAsync(jobId);   // the job path still follows jobs
        Assert.Null(job.Evaluation);

        (await http.PostAsync($"/api/evaluations/{evaluationId}/start", null)).EnsureSuccessStatusCode();
        var final = await client.Final.Task.WaitAsync(TimeSpan.FromMinutes(3));
        Assert.Equal(evaluationId, final.JobId);
        Assert.Equal(JobState.Completed, final.State);
        Assert.Equal(2, final.Completed);
        await client.Connection.InvokeAsync(JobsHubMethods.UnsubscribeEvaluation, evaluationId);
    }
}
