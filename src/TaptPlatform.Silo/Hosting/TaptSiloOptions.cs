using Azure.Data.Tables;
using Azure.Storage.Blobs;

namespace TaptPlatform.Silo.Hosting;

/// <summary>Connection and names of the Azure Storage account (configuration section <c>Tapt:Storage</c>).</summary>
public sealed class TaptStorageOptions
{
    /// <summary>Azurite's well-known development account unless configured.</summary>
    public const string DevelopmentStorage = "UseDevelopmentStorage=true";

    public string ConnectionString { get; set; } = DevelopmentStorage;

    /// <summary>Orleans membership table.</summary>
    public string ClusteringTable { get; set; } = "TaptCluster";

    /// <summary>Tenant grain state (Azure Table).</summary>
    public string TenantTable { get; set; } = "TaptTenants";

    /// <summary>Job grain state (Azure Blob).</summary>
    public string JobStateContainer { get; set; } = "tapt-job-state";

    /// <summary>The registered models' folders (Azure Blob).</summary>
    public string ModelContainer { get; set; } = "tapt-models";

    /// <summary>Every tenant's jobs, a row each (Azure Table).</summary>
    public string TenantJobTable { get; set; } = "TaptTenantJobs";

    /// <summary>The operator's own records (Azure Blob), such as the signed summaries of tenant erasures.</summary>
    public string OperatorContainer { get; set; } = "tapt-operator";

    /// <summary>Job resume reminders (Azure Table).</summary>
    public string ReminderTable { get; set; } = "TaptReminders";

    /// <summary>Pipeline settings of the table client (retries, policies); null: the SDK's defaults.</summary>
    public TableClientOptions? TableClientOptions { get; set; }

    /// <summary>Pipeline settings of the blob client; null: the SDK's defaults.</summary>
    public BlobClientOptions? BlobClientOptions { get; set; }

    private TableServiceClient? _tables;
    private BlobServiceClient? _blobs;

    /// <summary>The account's table client, made once: clustering, reminders and tenant state share its pipeline.</summary>
    public TableServiceClient Tables => _tables ??= new TableServiceClient(ConnectionString, TableClientOptions);

    /// <summary>The account's blob client, made once: job state and artifacts share its pipeline.</summary>
    public BlobServiceClient Blobs => _blobs ??= new BlobServiceClient(ConnectionString, BlobClientOptions);
}

/// <summary>The silo's role (configuration section <c>Tapt</c>).</summary>
public sealed class TaptSiloOptions
{
    /// <summary>"cpu" or "cuda": runs the tuning engine and may host model grains; "cpu-only": tenant and job grains only.</summary>
    public string Accelerator { get; set; } = "cpu";
}
