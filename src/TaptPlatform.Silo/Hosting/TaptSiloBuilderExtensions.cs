using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Serialization;
using Orleans.Storage;
using TaptPlatform.Contracts;
using TaptPlatform.Grains;
using TaptPlatform.Grains.Erasure;
using TaptPlatform.Grains.Models;
using TaptPlatform.Grains.Placement;
using TaptPlatform.Grains.Retention;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Grains.Tenants;
using TaptPlatform.Grains.Telemetry;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Silo.Hosting;

/// <summary>
/// The silo's capabilities, one extension each, so a host reads as a list:
/// <code>
/// silo.UseTaptAzureClustering(storage)
///     .AddTaptStorage(storage)
///     .UseTaptAzureReminders(storage)
///     .UseTaptRole("cpu", engine => engine.Threads = 2);
/// </code>
/// </summary>
public static class TaptSiloBuilderExtensions
{
    /// <summary>
    /// A whole silo from configuration, as the silo host and the gateway's all-in-one mode run it: cluster and
    /// endpoints from <c>Orleans:*</c> (<see cref="TaptClusterOptions"/>), Azure Table clustering and reminders, Azure
    /// grain storage and artifacts (<c>Tapt:Storage</c>, <c>Tapt:Jobs</c>), and its role (<c>Tapt:Accelerator</c>,
    /// <c>Tapt:Engine</c>, <c>Tapt:Models</c>).
    /// </summary>
    public static ISiloBuilder UseTaptSilo(this ISiloBuilder silo, IConfiguration configuration)
    {
        var cluster = TaptClusterOptions.Read(configuration);
        var storage = configuration.TaptStorage();
        return silo
            .Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = cluster.ClusterId;
                o.ServiceId = cluster.ServiceId;
            })
            .ConfigureEndpoints(System.Net.IPAddress.Parse(cluster.AdvertisedIP), cluster.SiloPort, cluster.GatewayPort)
            .UseTaptAzureClustering(storage)
            .UseTaptAzureReminders(storage)
            .AddTaptStorage(storage, configuration.TaptJobs())
            .UseTaptRole(configuration)
            .AddTaptApiKeySigning(configuration)
            .AddActivityPropagation();
    }

    /// <summary>The API key signer (<c>Tapt:ApiKeys</c>, see <see cref="ApiKeyOptions"/>): tenant grains mint signed keys.</summary>
    public static ISiloBuilder AddTaptApiKeySigning(this ISiloBuilder silo, IConfiguration configuration)
    {
        silo.Services.AddTaptApiKeySigning(o => configuration.GetSection(ApiKeyOptions.Section).Bind(o));
        return silo;
    }

    /// <summary>
    /// Registers <see cref="ApiKeyOptions"/> (checked when the host starts) and the <see cref="ApiKeySigner"/> built from
    /// them; for silos and gateways alike (registering twice, as the all-in-one mode does, is harmless).
    /// </summary>
    public static IServiceCollection AddTaptApiKeySigning(this IServiceCollection services, Action<ApiKeyOptions> configure)
    {
        services.AddOptions<ApiKeyOptions>().Configure(configure).ValidatedOnStart();
        services.TryAddSingleton(sp => new ApiKeySigner(sp.GetRequiredService<IOptions<ApiKeyOptions>>().Value.SigningKey!));
        services.TryAddSingleton<ErasureSummarySigner>();
        return services;
    }

    /// <summary>Orleans membership in an Azure (or Azurite) table.</summary>
    public static ISiloBuilder UseTaptAzureClustering(this ISiloBuilder silo, TaptStorageOptions storage) =>
        silo.UseAzureStorageClustering(o =>
        {
            o.TableServiceClient = storage.Tables;
            o.TableName = storage.ClusteringTable;
        });

    /// <summary>Job resume reminders in an Azure (or Azurite) table.</summary>
    public static ISiloBuilder UseTaptAzureReminders(this ISiloBuilder silo, TaptStorageOptions storage) =>
        silo.UseAzureTableReminderService(o =>
        {
            o.TableServiceClient = storage.Tables;
            o.TableName = storage.ReminderTable;
        });

    /// <summary>
    /// Grain state (tenants in Azure Table, jobs in Azure Blob, both with the Orleans serializer) and the per-tenant
    /// blob artifact store, all on one storage account; plus the job scheduling options and the job metrics.
    /// </summary>
    public static ISiloBuilder AddTaptStorage(this ISiloBuilder silo, TaptStorageOptions storage, Action<JobOptions>? jobs = null)
    {
        silo.AddAzureTableGrainStorage(GrainStorageNames.Tenants, o => o
            .Configure<IServiceProvider>((options, sp) =>
            {
                options.TableServiceClient = storage.Tables;
                options.TableName = storage.TenantTable;
                options.DeleteStateOnClear = true;   // a cleared state (tenant erasure) leaves no row behind
                options.GrainStorageSerializer = new OrleansGrainStorageSerializer(sp.GetRequiredService<Serializer>());
            }));
        silo.AddAzureBlobGrainStorage(GrainStorageNames.Jobs, o => o
            .Configure<IServiceProvider>((options, sp) =>
            {
                options.BlobServiceClient = storage.Blobs;
                options.ContainerName = storage.JobStateContainer;
                options.DeleteStateOnClear = true;
                options.GrainStorageSerializer = new OrleansGrainStorageSerializer(sp.GetRequiredService<Serializer>());
            }));
        silo.Services.TryAddSingleton(TimeProvider.System);
        silo.Services.AddMetrics();
        silo.Services.TryAddSingleton<JobMetrics>();
        silo.Services.TryAddSingleton<InputMemory>();
        silo.Services.AddSingleton(new TenantContainers(storage.Blobs, storage.Blobs.GetBlobContainerClient(storage.OperatorContainer)));
        silo.Services.AddSingleton<IArtifactStore>(sp => new BlobArtifactStore(sp.GetRequiredService<TenantContainers>()));
        silo.Services.AddSingleton(sp => new ImageStaging(sp.GetRequiredService<TenantContainers>()));
        silo.Services.AddSingleton(sp => new VocabularyStore(sp.GetRequiredService<TenantContainers>()));
        silo.Services.TryAddSingleton(sp => new AuditTrailStore(sp.GetRequiredService<TenantContainers>()));
        silo.Services.AddSingleton(sp => new PromptArtifactStore(sp.GetRequiredService<TenantContainers>()));
        silo.Services.AddSingleton(new ModelStore(storage.Blobs.GetBlobContainerClient(storage.ModelContainer)));
        silo.Services.AddSingleton(new TenantJobIndex(storage.Tables.GetTableClient(storage.TenantJobTable)));
        silo.Services.AddSingleton(new ErasureRecords(storage.Blobs.GetBlobContainerClient(storage.OperatorContainer)));
        silo.Services.AddOptions<TenantLimits>().BindConfiguration("Tapt:Tenants").ValidatedOnStart();
        silo.Services.AddOptions<RetentionOptions>().BindConfiguration("Tapt:Retention").ValidatedOnStart();
        var jobOptions = silo.Services.AddOptions<JobOptions>().ValidatedOnStart();
        if (jobs is not null) jobOptions.Configure(jobs);
        return silo;
    }

    /// <summary>
    /// Publishes the silo's accelerator role as silo metadata and registers the accelerator placement filter (every
    /// silo needs it to place model grains). On an accelerator silo (<c>cpu</c> or <c>cuda</c>) also registers the
    /// model catalog and the tuning engine; a <c>cpu-only</c> silo never hosts a model grain.
    /// </summary>
    public static ISiloBuilder UseTaptRole(this ISiloBuilder silo, string accelerator,
        Action<TuningEngineOptions>? engine = null, Action<ModelCatalogOptions>? models = null, Action<ArtifactCacheOptions>? artifacts = null)
    {
        var role = SiloRoles.Parse(accelerator);
        silo.UseSiloMetadata(new Dictionary<string, string> { [SiloRoles.MetadataKey] = role });
        silo.Services.AddAcceleratorPlacementFilter();
        silo.Services.AddSiloKeyedPlacement();
        var engineOptions = silo.Services.AddOptions<TuningEngineOptions>().ValidatedOnStart()
            .Configure(o => o.Device = role == SiloRoles.Cuda ? "cuda" : "cpu");
        if (engine is not null) engineOptions.Configure(engine);
        var modelOptions = silo.Services.AddOptions<ModelCatalogOptions>();
        if (models is not null) modelOptions.Configure(models);
        silo.Services.AddSingleton(sp => new SiloRoleInfo(role, SiloRoles.HasAccelerator(role) ? sp.GetRequiredService<IOptions<TuningEngineOptions>>().Value.Device : "none"));
        if (SiloRoles.HasAccelerator(role))
        {
            var artifactOptions = silo.Services.AddOptions<ArtifactCacheOptions>().ValidatedOnStart();
            if (artifacts is not null) artifactOptions.Configure(artifacts);
            silo.Services.AddSingleton<TenantArtifactCache>();
            silo.Services.AddOptions<ModelCacheOptions>().BindConfiguration(ModelCacheOptions.Section).ValidatedOnStart();
            silo.Services.AddOptions<ModelRegistryOptions>().BindConfiguration(ModelRegistryOptions.Section).ValidatedOnStart();
            silo.Services.AddSingleton<ModelFileCache>();
            silo.Services.AddSingleton<ModelCatalog>();
            silo.Services.AddSingleton<RegisteredModels>();
            silo.Services.AddMetrics();
            silo.Services.TryAddSingleton<TuningMetrics>();
            silo.Services.AddSingleton<TuningEngine>();
            silo.Services.AddSingleton<TaptPlatform.Grains.Evaluation.EvaluationEngine>();
        }
        return silo;
    }

    /// <summary>
    /// <see cref="UseTaptRole(ISiloBuilder, string, Action{TuningEngineOptions}?, Action{ModelCatalogOptions}?, Action{ArtifactCacheOptions}?)"/>
    /// from configuration: <c>Tapt:Accelerator</c>, <c>Tapt:Engine</c>, <c>Tapt:Models</c>, <c>Tapt:ArtifactCache</c>.
    /// </summary>
    public static ISiloBuilder UseTaptRole(this ISiloBuilder silo, IConfiguration configuration)
    {
        var tapt = configuration.GetSection("Tapt");
        var accelerator = tapt.Get<TaptSiloOptions>()?.Accelerator ?? "cpu";
        return silo.UseTaptRole(accelerator,
            engine => tapt.GetSection("Engine").Bind(engine),
            models =>
            {
                tapt.GetSection("Models").Bind(models);
                models.Root ??= DefaultModelRoot();
            },
            artifacts => tapt.GetSection("ArtifactCache").Bind(artifacts));
    }

    /// <summary>The job scheduling options from <c>Tapt:Jobs</c> (see <see cref="JobOptions"/>).</summary>
    public static Action<JobOptions> TaptJobs(this IConfiguration configuration) =>
        jobs => configuration.GetSection("Tapt:Jobs").Bind(jobs);

    /// <summary>The storage settings from <c>Tapt:Storage</c> (Azurite's development account by default).</summary>
    public static TaptStorageOptions TaptStorage(this IConfiguration configuration)
    {
        var o = new TaptStorageOptions();
        configuration.GetSection("Tapt:Storage").Bind(o);
        return o;
    }

    /// <summary>The first <c>models</c> folder found from the executable's folder or the working directory upwards.</summary>
    public static string? DefaultModelRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var candidate = Path.Combine(d.FullName, "models");
                if (Directory.Exists(candidate)) return candidate;
            }
        return null;
    }
}
