namespace TaptPlatform.Gateway.Hosting;

/// <summary>The gateway's settings (configuration section <c>Tapt:Gateway</c>).</summary>
public sealed class GatewayOptions : TaptPlatform.Grains.ISelfValidatingOptions
{
    public const string Section = "Tapt:Gateway";

    /// <summary><c>client</c> (default): an Orleans client of a separate cluster; <c>all-in-one</c>: co-hosts a silo.</summary>
    public string Mode { get; set; } = GatewayModes.Client;

    /// <summary>The operator key that creates tenants and issues their keys (at least 16 characters; unset: no operator).</summary>
    public string? OperatorKey { get; set; }

    /// <summary>Largest JSON (or other non-upload) request body.</summary>
    public long MaxJsonBytes { get; set; } = 2 * 1024 * 1024;

    /// <summary>Largest multipart upload request.</summary>
    public long MaxUploadBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Largest single image in an upload (the image pipeline's own limit is 20 MiB).</summary>
    public long MaxImageBytes { get; set; } = 20L * 1024 * 1024;

    /// <summary>The largest model folder (a zip) an operator may register through the API (ViT-L/14 in fp32 is about 1.7 GB).</summary>
    public long MaxModelBytes { get; set; } = 4L << 30;

    /// <summary>The largest prompt artifact a tenant may upload (also bounded by <see cref="MaxUploadBytes"/>).</summary>
    public long MaxPromptArtifactBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// An image part longer than this is not held in memory: the gateway streams it into a staging blob of the job
    /// (hashing it and enforcing <see cref="MaxImageBytes"/> as it goes) and hands the job grain a reference, so no
    /// grain message carries it. Shorter parts travel in the job grain call as they are.
    /// </summary>
    public long StagingThresholdBytes { get; set; } = 1L * 1024 * 1024;

    /// <summary>Most images in one upload request.</summary>
    public int MaxImagesPerRequest { get; set; } = 1000;

    /// <summary>Images handed to the job grain per call while an upload streams in…</summary>
    public int UploadChunkImages { get; set; } = 64;

    /// <summary>…or fewer, when their bytes reach this.</summary>
    public long UploadChunkBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>How long a validated API key is trusted before the tenant grain is asked again (revocations through this gateway apply at once).</summary>
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Jobs running at once in the whole cluster, over every tenant (counted by one grain). A start past it answers 429
    /// <c>cluster_busy</c> with <c>Retry-After</c>; the job keeps its images. This bounds the images in flight on the
    /// accelerators (at most this × <c>Tapt:Jobs:MaxInFlight</c>) and so their memory, however many tenants submit.
    /// </summary>
    public int MaxRunningJobs { get; set; } = 64;

    /// <summary>
    /// The most one evaluation may cost (<see cref="TaptPlatform.Contracts.EvaluationCost"/>: images × ε × steps × restarts × EOT,
    /// × views when adaptive); more answers 422 <c>evaluation_too_costly</c> at creation, upload or start. The default
    /// admits the README's largest documented run (1000 images, PGD-100, adaptive at 64 views: 6.4 million).
    /// </summary>
    public long MaxEvaluationCost { get; set; } = 10_000_000;

    /// <summary>Limits every tenant gets unless <see cref="Tenants"/> overrides them.</summary>
    public TenantLimits Limits { get; set; } = new();

    /// <summary>
    /// The rate limit, per client address, of requests that carry no correctly signed tenant key (nor the operator
    /// key): anonymous calls, malformed or forged keys, and unsigned keys issued before keys were signed. It is applied
    /// before authentication, so a flood of bad keys gets 429 after its burst without costing a key check.
    /// </summary>
    public AddressLimits Unauthenticated { get; set; } = new();

    /// <summary>Per-tenant overrides of <see cref="Limits"/> (by tenant id); unset values fall back to the defaults.</summary>
    public Dictionary<string, TenantLimits> Tenants { get; set; } = new(StringComparer.Ordinal);

    public LiveOptions Live { get; set; } = new();

    /// <summary>The limits in force for a tenant.</summary>
    public EffectiveLimits LimitsFor(string? tenantId)
    {
        var o = tenantId is not null ? Tenants.GetValueOrDefault(tenantId) : null;
        return new EffectiveLimits(
            o?.RequestsPerSecond ?? Limits.RequestsPerSecond ?? 50,
            o?.Burst ?? Limits.Burst ?? 200,
            o?.MaxConcurrentJobs ?? Limits.MaxConcurrentJobs ?? 4,
            o?.ImagesPerDay ?? Limits.ImagesPerDay ?? 100_000);
    }

    public void Validate()
    {
        if (OperatorKey is not null && OperatorKey.Length < 16) throw new ArgumentException($"{Section}:OperatorKey must have at least 16 characters");
        if (MaxJsonBytes <= 0 || MaxUploadBytes <= 0 || MaxImageBytes <= 0 || MaxImagesPerRequest <= 0 || UploadChunkImages <= 0 || MaxPromptArtifactBytes <= 0 || MaxModelBytes <= 0)
            throw new ArgumentException($"{Section}: size limits must be positive");
        if (StagingThresholdBytes is < 64 * 1024 or > 16L * 1024 * 1024)
            throw new ArgumentException($"{Section}:StagingThresholdBytes must be in 64 KiB..16 MiB (larger parts would travel whole in grain messages)");
        if (Unauthenticated.RequestsPerSecond < 1 || Unauthenticated.Burst < 1)
            throw new ArgumentException($"{Section}:Unauthenticated:RequestsPerSecond and Burst must be at least 1");
        if (MaxRunningJobs is < 1 or > 10_000) throw new ArgumentException($"{Section}:MaxRunningJobs must be in 1..10000");
        if (MaxEvaluationCost < 1) throw new ArgumentException($"{Section}:MaxEvaluationCost must be positive");
    }
}

/// <summary>
/// The Orleans Dashboard (configuration section <c>Tapt:Dashboard</c>): served by the gateway in the all-in-one mode
/// only, at <see cref="Path"/>, to loopback clients only (it shows grain state and streams the logs, unauthenticated).
/// </summary>
public sealed class TaptDashboardOptions
{
    public const string Section = "Tapt:Dashboard";

    /// <summary>Off unless set (<c>run.sh</c> sets it).</summary>
    public bool Enabled { get; set; }

    /// <summary>Where the dashboard is served.</summary>
    public string Path { get; set; } = "/dashboard";

    /// <summary>Turns off the dashboard's live log stream.</summary>
    public bool HideTrace { get; set; }

    /// <summary>Milliseconds between the dashboard's samples (at least 1000).</summary>
    public int CounterUpdateIntervalMs { get; set; } = 1000;

    /// <summary>Samples of history the dashboard keeps.</summary>
    public int HistoryLength { get; set; } = 100;

    public static TaptDashboardOptions Read(IConfiguration configuration)
    {
        var o = configuration.GetSection(Section).Get<TaptDashboardOptions>() ?? new TaptDashboardOptions();
        if (!o.Path.StartsWith('/') || o.Path.Length < 2 || o.Path.EndsWith('/') || o.Path.Contains("//", StringComparison.Ordinal))
            throw new InvalidOperationException($"{Section}:Path must be a path such as /dashboard (got '{o.Path}')");
        if (o.CounterUpdateIntervalMs < 1000) throw new InvalidOperationException($"{Section}:CounterUpdateIntervalMs must be at least 1000");
        if (o.HistoryLength is < 1 or > 10_000) throw new InvalidOperationException($"{Section}:HistoryLength must be in 1..10000");
        return o;
    }

    public void Apply(Orleans.Dashboard.DashboardOptions o)
    {
        o.HideTrace = HideTrace;
        o.CounterUpdateIntervalMs = CounterUpdateIntervalMs;
        o.HistoryLength = HistoryLength;
    }
}

public static class GatewayModes
{
    public const string Client = "client";
    public const string AllInOne = "all-in-one";
}

/// <summary>Rate limit and quotas of a tenant; null: the default.</summary>
public sealed class TenantLimits
{
    /// <summary>Sustained API requests per second (a token bucket refilled every second).</summary>
    public int? RequestsPerSecond { get; set; }

    /// <summary>Requests allowed in a burst (the bucket's size).</summary>
    public int? Burst { get; set; }

    /// <summary>Jobs running at once.</summary>
    public int? MaxConcurrentJobs { get; set; }

    /// <summary>Images accepted per UTC day.</summary>
    public int? ImagesPerDay { get; set; }
}

/// <summary>The rate limit of one client address (see <see cref="GatewayOptions.Unauthenticated"/>).</summary>
public sealed class AddressLimits
{
    /// <summary>Sustained requests per second.</summary>
    public int RequestsPerSecond { get; set; } = 10;

    /// <summary>Requests allowed in a burst.</summary>
    public int Burst { get; set; } = 50;
}

public sealed record EffectiveLimits(int RequestsPerSecond, int Burst, int MaxConcurrentJobs, int ImagesPerDay);

/// <summary>Live progress over SignalR (section <c>Tapt:Gateway:Live</c>).</summary>
public sealed class LiveOptions
{
    /// <summary>Jobs one connection may follow at once.</summary>
    public int MaxSubscriptionsPerConnection { get; set; } = 16;

    /// <summary>Final results waiting for one slow connection; past this the connection is told to resynchronise.</summary>
    public int ResultBufferCapacity { get; set; } = 2048;

    /// <summary>Images with a pending step event per connection (each keeps only its latest step).</summary>
    public int StepBufferCapacity { get; set; } = 512;

    /// <summary>The shortest time between two step messages to one connection: steps arriving meanwhile are coalesced.</summary>
    public TimeSpan StepInterval { get; set; } = TimeSpan.FromMilliseconds(40);

    /// <summary>A connection whose single send takes longer than this is closed (it is not reading).</summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often the gateway renews its observer subscriptions (the job grains forget them after 5 minutes). A renewal
    /// also finds a job that was reactivated elsewhere (its silo died) and lost its observers: its followers get a
    /// <c>resync</c>, so this is also the longest a follower waits for live events again after a silo failure.
    /// </summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Most results a snapshot carries (the rest are a paged HTTP request away).</summary>
    public int SnapshotResults { get; set; } = 2000;
}
