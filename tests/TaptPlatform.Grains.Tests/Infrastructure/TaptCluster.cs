using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Globalization;
using Orleans.Runtime;
using Orleans.TestingHost;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Tenants;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Silo.Hosting;

namespace TaptPlatform.Grains.Tests.Infrastructure;

/// <summary>
/// An in-process multi-silo cluster wired with the silo's own extension methods: Azure (Azurite) grain storage and
/// artifacts, in-memory reminders and test membership, and a role per silo chosen by its instance number.
/// By default silo 0 is <c>cpu-only</c> and every later silo (including ones started later) is a <c>cpu</c> accelerator.
/// </summary>
public sealed class TaptCluster : IAsyncDisposable
{
    private TaptCluster(InProcessTestCluster cluster, TaptStorageOptions storage, StorageFaults faults)
    {
        Cluster = cluster;
        Storage = storage;
        Faults = faults;
    }

    /// <summary>Makes the silos' storage calls fail on demand.</summary>
    public StorageFaults Faults { get; }

    /// <summary>Limits small enough for a test to reach (every cluster of the tests has them).</summary>
    public const long TestVocabularyBytes = 4L * 1024 * 1024;

    public InProcessTestCluster Cluster { get; }
    public TaptStorageOptions Storage { get; }
    public IClusterClient Client => Cluster.Client;

    public static string DefaultRole(int instance) => instance == 0 ? SiloRoles.CpuOnly : SiloRoles.Cpu;

    public static async Task<TaptCluster> StartAsync(string connectionString, int initialSilos = 2, Func<int, string>? roleOf = null,
        Action<TuningEngineOptions>? engine = null, Action<JobOptions>? jobs = null)
    {
        roleOf ??= DefaultRole;
        var faults = new StorageFaults();
        var storage = new TaptStorageOptions
        {
            ConnectionString = connectionString,
            TenantTable = "TaptTenantsTests",
            TenantJobTable = "TaptTenantJobsTests",
            JobStateContainer = "tapt-job-state-tests",
            TableClientOptions = new Azure.Data.Tables.TableClientOptions(),
            BlobClientOptions = new Azure.Storage.Blobs.BlobClientOptions(),
        };
        storage.TableClientOptions.AddPolicy(faults, Azure.Core.HttpPipelinePosition.PerCall);
        storage.BlobClientOptions.AddPolicy(faults, Azure.Core.HttpPipelinePosition.PerCall);
        var builder = new InProcessTestClusterBuilder((short)initialSilos);
        builder.Options.ConfigureFileLogging = false;
        if (Environment.GetEnvironmentVariable("TAPT_TEST_LOG") is { Length: > 0 } level)
            builder.ConfigureSiloHost((_, host) => host.Logging
                .AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ")
                .AddFilter("TaptPlatform", Enum.Parse<LogLevel>(level, ignoreCase: true))
                .AddFilter("Orleans", LogLevel.Warning));
        builder.ConfigureSilo((options, silo) =>
        {
            var instance = int.Parse(options.SiloName[(options.SiloName.LastIndexOf('_') + 1)..], CultureInfo.InvariantCulture);
            // Random placement for grains without a strategy of their own. Orleans' default (resource-optimised) scores
            // two silos that share one process on one loaded machine alike and may keep choosing the same one, so whether
            // a tenant grain ever landed on the cpu-only silo depended on the machine's load.
            silo.Services.AddSingleton<PlacementStrategy, RandomPlacement>();
            silo.Services.Configure<TenantLimits>(o => o.MaxVocabularyBytes = TestVocabularyBytes);
            // Retention tests set periods of seconds (production's shortest is minutes).
            silo.Services.Configure<TaptPlatform.Grains.Retention.RetentionOptions>(o =>
            {
                o.MinimumPeriod = TimeSpan.FromSeconds(1);
                o.StagingPeriod = TimeSpan.FromSeconds(2);
            });
            silo.Services.AddTaptApiKeySigning(o => o.SigningKey = "api-key-signing-key-of-the-grain-tests-0123456789");
            silo.AddTaptStorage(storage, o =>
                {
                    o.RetryDelay = TimeSpan.FromMilliseconds(200);
                    o.MaxRetryDelay = TimeSpan.FromSeconds(1);
                    o.WatchdogPeriod = TimeSpan.FromSeconds(1);
                    jobs?.Invoke(o);
                })
                .UseInMemoryReminderService()
                .UseTaptRole(roleOf(instance),
                    e =>
                    {
                        e.Threads = 1;
                        e.QueueCapacity = 16;
                        e.MaxBatchSize = 8;
                        e.TorchThreads = 1;
                        engine?.Invoke(e);
                    },
                    m =>
                    {
                        m.Root = TestModels.RepositoryModels;
                        m.Directories[TestModels.Tiny] = TestModels.TinyDirectory;
                        m.Directories[TestModels.Default] = TestModels.DefaultDirectory;
                    })
                .AddActivityPropagation();
        });
        // Trace context flows client → silos as in the deployed hosts (the observability tests follow a trace).
        builder.ConfigureClient(client => client.AddActivityPropagation());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new TaptCluster(cluster, storage, faults);
    }

    /// <summary>The silo with this instance number (Silo_N).</summary>
    public InProcessSiloHandle Silo(int instance) =>
        Cluster.Silos.Single(s => s.Name == "Silo_" + instance.ToString(CultureInfo.InvariantCulture));

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Cluster.StopAllSilosAsync();
        }
        finally
        {
            await Cluster.DisposeAsync();
        }
    }
}
