using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Core.Internal;
using TaptPlatform.Contracts;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Live;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary>Live progress through the hub with the .NET SignalR client.</summary>
[Collection(GatewayCollection.Name)]
public sealed class LiveEventsTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_subscriber_gets_the_snapshot_then_every_step_result_and_progress_of_its_job()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("live", steps: 4, views: 64);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "live");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 12)));

        await using var client = await LiveClient.ConnectAsync(gateway, key);
        var snapshot = await client.SubscribeAsync(jobId);
        Assert.Equal(JobStateName("open"), snapshot.Job.State.ToString().ToLowerInvariant());
        Assert.Equal(12, snapshot.Job.Counts.Total);
        Assert.Empty(snapshot.Results);
        Assert.Equal(TestModels.FashionLabels, snapshot.Labels);

        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var final = await client.Final.Task.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(12, final.Completed);
        Assert.Equal(12, final.Total);
        Assert.Equal(0, final.EtaSeconds);
        // Each image's result exactly once, with its baseline and defended labels.
        Assert.Equal(Enumerable.Range(0, 12), client.Results.Keys.Order());
        Assert.Equal(0, client.DuplicateResults);
        Assert.All(client.Results.Values, r =>
        {
            Assert.Contains(r.Label, TestModels.FashionLabels);
            Assert.Contains(r.BaselineLabel, TestModels.FashionLabels);
            Assert.Equal(r.Flagged, r.Reasons.Length > 0);
        });
        // Each result carries the gateway's time of sending: after the job recorded it, before this client got it (one clock).
        Assert.All(client.Results, kv =>
        {
            var (server, received) = client.ResultTimes[kv.Key];
            Assert.InRange(server, kv.Value.CompletedAt, received);
        });
        // Steps: losses and the current top labels, for the images being tuned.
        Assert.NotEmpty(client.Steps);
        Assert.All(client.Steps, s =>
        {
            Assert.Equal(jobId, s.JobId);
            Assert.InRange(s.Step, 1, 4);
            Assert.True(double.IsFinite(s.TotalLoss) && double.IsFinite(s.EntropyLoss));
            Assert.NotEmpty(s.TopK);
            Assert.All(s.TopK, p => Assert.InRange(p.Probability, 0f, 1f));
        });
        Assert.True(client.Steps.Select(s => s.ImageIndex).Distinct().Count() >= 6, "step events reached fewer than half of the images");
        // Progress counts only go up.
        var completed = client.Progress.Select(p => p.Completed).ToList();
        Assert.Equal(completed.Order(), completed);
        var status = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}");
        var seconds = (status.GetProperty("finishedAt").GetDateTimeOffset() - status.GetProperty("startedAt").GetDateTimeOffset()).TotalSeconds;
        if (seconds > 2) Assert.Contains(client.Progress, p => p.ThroughputPerSecond > 0 && p.EtaSeconds is not null);
    }

    [Fact]
    public async Task A_late_joiner_first_gets_the_current_state_then_the_rest_live()
    {
        // Three batches of eight: the client joins after the first, usually while the job still runs.
        const int images = 24;
        var (_, key, http) = await gateway.TenantWithSetupAsync("late", steps: 12, views: 256);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "late");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, images)));
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while ((await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}")).GetProperty("counts").GetProperty("completed").GetInt32() == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no image finished in time");
            await Task.Delay(50);
        }

        await using var client = await LiveClient.ConnectAsync(gateway, key);
        var snapshot = await client.SubscribeAsync(jobId);
        Assert.NotEmpty(snapshot.Results);
        Assert.Equal(snapshot.Job.Counts.Completed, snapshot.Results.Length);
        Assert.Equal(images, snapshot.Job.Counts.Total);
        if (snapshot.Job.State == JobState.Completed)
        {
            // On a loaded machine the job can end before the client joins: then the snapshot is the whole story and
            // no final event follows.
            Assert.Equal(Enumerable.Range(0, images), snapshot.Results.Select(r => r.Index).Order());
            return;
        }

        Assert.Equal(JobState.Running, snapshot.Job.State);
        var final = await client.Final.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(images, final.Completed);
        var all = snapshot.Results.Select(r => r.Index).Concat(client.Results.Keys).ToHashSet();
        Assert.Equal(Enumerable.Range(0, images), all.Order());
        Assert.NotEmpty(client.Results);   // it joined mid-job: the rest came live
    }

    [Fact]
    public async Task A_slow_connection_gets_coalesced_steps_while_a_fast_one_gets_everything_and_the_job_does_not_wait()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("slow", steps: 10, views: 128);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "slow");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 16)));

        await using var fast = await LiveClient.ConnectAsync(gateway, key);
        await using var slow = await LiveClient.ConnectAsync(gateway, key);
        ThrottledLiveSender.Slow[slow.Connection.ConnectionId!] = TimeSpan.FromMilliseconds(400);
        try
        {
            await fast.SubscribeAsync(jobId);
            await slow.SubscribeAsync(jobId);
            var clock = Stopwatch.StartNew();
            (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
            await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(1));
            var jobDone = clock.Elapsed;

            var fastFinal = await fast.Final.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(16, fastFinal.Completed);
            Assert.Equal(16, fast.Results.Count);
            Assert.False(slow.Final.Task.IsCompleted, "the slow connection kept up: the test did not make it slow");

            // The slow one catches up with the final state and every result; its steps were coalesced per image.
            var slowFinal = await slow.Final.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(16, slowFinal.Completed);
            Assert.Equal(Enumerable.Range(0, 16), slow.Results.Keys.Order());
            Assert.True(slow.Steps.Count < fast.Steps.Count, $"slow {slow.Steps.Count} vs fast {fast.Steps.Count} step events");
            Assert.True(slow.Steps.Sum(s => s.Coalesced) > 0);
            Assert.True(clock.Elapsed > jobDone);

            var outbox = gateway.Factory.Services.GetRequiredService<LiveConnections>().Get(slow.Connection.ConnectionId!);
            Assert.NotNull(outbox);
            Assert.True(outbox!.Coalesced > 0);
            Assert.Equal(0, outbox.Dropped);
        }
        finally
        {
            ThrottledLiveSender.Slow.TryRemove(slow.Connection.ConnectionId!, out var _);
        }
    }

    [Fact]
    public async Task Followers_of_a_job_reactivated_without_their_subscription_get_a_resync_and_catch_up_from_a_fresh_snapshot()
    {
        var (_, key, http) = await gateway.TenantWithSetupAsync("moved", steps: 1, views: 8);
        using var _ = http;
        var jobId = await GatewayFixture.CreateJobAsync(http, "moved");
        await GatewayFixture.UploadAsync(http, jobId, GatewayFixture.FashionImages(Enumerable.Range(0, 6)));
        await using var client = await LiveClient.ConnectAsync(gateway, key);
        await client.SubscribeAsync(jobId);

        // The job grain is reactivated without the gateway's observer (as after its silo died) and runs to the end.
        var grains = gateway.Factory.Services.GetRequiredService<IGrainFactory>();
        await grains.GetGrain<IJobGrain>(jobId).AsReference<IGrainManagementExtension>().DeactivateOnIdle();
        (await http.PostAsync($"/api/jobs/{jobId}/start", null)).EnsureSuccessStatusCode();
        await GatewayFixture.WaitForJobAsync(http, jobId, TimeSpan.FromMinutes(1));

        // The next renewal finds out and tells the follower, whose fresh snapshot holds every result.
        await gateway.Factory.Services.GetRequiredService<JobEventBridge>().RenewAsync(CancellationToken.None);
        var resync = await client.Resync.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(jobId, resync.JobId);
        var snapshot = await client.SubscribeAsync(jobId);
        Assert.Equal(JobState.Completed, snapshot.Job.State);
        Assert.Equal(Enumerable.Range(0, 6), snapshot.Results.Select(r => r.Index).Order());
    }

    private static string JobStateName(string s) => s;

    /// <summary>A .NET SignalR client following jobs and recording what it receives.</summary>
    internal sealed class LiveClient : IAsyncDisposable
    {
        private LiveClient(HubConnection connection) => Connection = connection;

        public HubConnection Connection { get; }
        public ConcurrentQueue<StepEvent> Steps { get; } = new();
        public ConcurrentDictionary<int, ResultView> Results { get; } = new();
        public ConcurrentDictionary<int, (DateTimeOffset Server, DateTimeOffset Received)> ResultTimes { get; } = new();
        public ConcurrentQueue<JobProgressEvent> Progress { get; } = new();
        public TaskCompletionSource<JobProgressEvent> Final { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<ResyncEvent> Resync { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int DuplicateResults;

        public static async Task<LiveClient> ConnectAsync(GatewayFixture gateway, string key, Uri? baseAddress = null)
        {
            var connection = new HubConnectionBuilder()
                .WithUrl(new Uri(baseAddress ?? gateway.BaseAddress, JobsHubMethods.Path), o => o.Headers["X-Api-Key"] = key)
                .AddJsonProtocol(o => GatewayJson.Configure(o.PayloadSerializerOptions))
                .Build();
            var client = new LiveClient(connection);
            connection.On<StepEvent[]>(JobsHubMethods.Steps, batch => { foreach (var s in batch) client.Steps.Enqueue(s); });
            connection.On<ImageCompletedEvent[]>(JobsHubMethods.ImagesCompleted, batch =>
            {
                var received = DateTimeOffset.UtcNow;
                foreach (var e in batch)
                {
                    if (!client.Results.TryAdd(e.Result.Index, e.Result)) Interlocked.Increment(ref client.DuplicateResults);
                    client.ResultTimes.TryAdd(e.Result.Index, (e.ServerTime, received));
                }
            });
            connection.On<JobProgressEvent>(JobsHubMethods.JobProgress, p =>
            {
                client.Progress.Enqueue(p);
                if (p.IsFinal) client.Final.TrySetResult(p);
            });
            connection.On<ResyncEvent>(JobsHubMethods.Resync, e => client.Resync.TrySetResult(e));
            await connection.StartAsync();
            return client;
        }

        public Task<JobSnapshot> SubscribeAsync(string jobId) => Connection.InvokeAsync<JobSnapshot>(JobsHubMethods.Subscribe, jobId);

        public ValueTask DisposeAsync() => Connection.DisposeAsync();
    }
}
