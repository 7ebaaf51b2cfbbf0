using System.Collections.Immutable;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// Shared by every test in the "platform" collection (run one after another: the machine is small): the storage
/// emulator and a two-silo cluster (silo 0 cpu-only, silo 1 a cpu accelerator) started on first use.
/// </summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    private TaptCluster? _cluster;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public Azurite Storage { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Storage = Azurite.Start();
        return Task.CompletedTask;
    }

    /// <summary>The shared two-silo cluster (tests that stop silos start their own).</summary>
    public async Task<TaptCluster> ClusterAsync()
    {
        await _gate.WaitAsync();
        try
        {
            return _cluster ??= await TaptCluster.StartAsync(Storage.ConnectionString);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
        Storage?.Dispose();
    }

    /// <summary>A fresh tenant id, so tests never see each other's data.</summary>
    public static string NewTenant(string prefix = "t") => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(40, prefix.Length + 33)];

    /// <summary>Sets up a tenant with the Fashion-MNIST vocabulary and a prompt configuration for <paramref name="model"/>.</summary>
    public static async Task<ITenantGrain> TenantWithFashionSetupAsync(IGrainFactory client, string tenantId, string model,
        int? views = null, int? steps = null, double minimumConfidence = 0.5)
    {
        var tenant = client.GetGrain<ITenantGrain>(tenantId);
        await tenant.PutVocabularyAsync(VocabularyDefinition.FromLabels("fashion", TestModels.FashionLabels));
        await tenant.PutPromptConfigurationAsync(new PromptConfiguration("default", model, Views: views, Steps: steps,
            Flagging: new FlaggingPolicy(MinimumConfidence: minimumConfidence)));
        return tenant;
    }

    /// <summary>Fashion-MNIST test images as PNG uploads named by their dataset index.</summary>
    public static ImmutableArray<JobImage> FashionImages(IEnumerable<int> indices) =>
        indices.Select(i => new JobImage($"fashion-test-{i}.png", TestModels.FashionPng(i))).ToImmutableArray();

    /// <summary>Polls the job until it leaves the running state (or the timeout passes).</summary>
    public static async Task<JobStatus> WaitForJobAsync(IJobGrain job, string tenantId, TimeSpan timeout, Action<JobStatus>? onPoll = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var s = await job.GetStatusAsync(tenantId);
            onPoll?.Invoke(s);
            if (s.State is JobState.Completed or JobState.Cancelled) return s;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {s.JobId} still {s.State} after {timeout}: {s.Counts} waiting={s.Waiting}");
            await Task.Delay(200);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PlatformCollection : ICollectionFixture<PlatformFixture>
{
    public const string Name = "platform";
}
