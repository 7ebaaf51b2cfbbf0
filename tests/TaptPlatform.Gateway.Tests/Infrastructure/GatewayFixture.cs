using System.Collections.Immutable;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests.Infrastructure;

/// <summary>
/// One real gateway for every test of the "gateway" collection (run one after another: the machine is small): the
/// gateway in its all-in-one mode (co-hosting a cpu accelerator silo that runs the tiny model) on Kestrel on a free
/// loopback port, over Azurite.
/// </summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string OperatorKey = "operator-key-for-the-gateway-tests-0123456789";
    public const long VocabularyBytesLimit = 4L * 1024 * 1024;
    public const long PromptArtifactBytesLimit = 1L * 1024 * 1024;

    /// <summary>The signing key of tenant keys, shared by the gateway and its silo (and any gateway a test adds).</summary>
    public const string ApiKeySigningKey = "api-key-signing-key-of-the-gateway-tests-0123456789";

    /// <summary>A tenant id configured with tight limits (2 requests/s, burst 4; 5 images a day; 1 running job).</summary>
    public string LimitedTenant { get; } = "limited-" + Guid.NewGuid().ToString("N")[..12];

    public Azurite Storage { get; private set; } = null!;

    /// <summary>The gateway's configuration (a test can start another gateway on the same cluster from it).</summary>
    public IReadOnlyDictionary<string, string> Settings { get; private set; } = null!;
    public GatewayFactory Factory { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>A folder under the test output for artifacts (screenshots).</summary>
    public static string ArtifactsFolder
    {
        get
        {
            var d = Path.Combine(AppContext.BaseDirectory, "artifacts");
            Directory.CreateDirectory(d);
            return d;
        }
    }

    public async Task InitializeAsync()
    {
        Storage = Azurite.Start();
        var clusterId = "gw-" + Guid.NewGuid().ToString("N")[..12];
        var settings = new Dictionary<string, string>
        {
            ["Tapt:Gateway:Mode"] = "all-in-one",
            ["Tapt:Gateway:OperatorKey"] = OperatorKey,
            ["Tapt:ApiKeys:SigningKey"] = ApiKeySigningKey,
            ["Tapt:Gateway:MaxJsonBytes"] = (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tapt:Gateway:MaxUploadBytes"] = (6 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tapt:Gateway:MaxImageBytes"] = (2 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tapt:Gateway:UploadChunkImages"] = "5",
            ["Tapt:Gateway:MaxPromptArtifactBytes"] = PromptArtifactBytesLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tapt:Gateway:Limits:RequestsPerSecond"] = "1000",
            ["Tapt:Gateway:Limits:Burst"] = "2000",
            ["Tapt:Gateway:Limits:MaxConcurrentJobs"] = "50",
            ["Tapt:Gateway:Limits:ImagesPerDay"] = "100000",
            // The tests send many requests without a valid key from one address (RequestLimitTests tightens this).
            ["Tapt:Gateway:Unauthenticated:RequestsPerSecond"] = "1000",
            ["Tapt:Gateway:Unauthenticated:Burst"] = "5000",
            [$"Tapt:Gateway:Tenants:{LimitedTenant}:RequestsPerSecond"] = "2",
            [$"Tapt:Gateway:Tenants:{LimitedTenant}:Burst"] = "4",
            [$"Tapt:Gateway:Tenants:{LimitedTenant}:ImagesPerDay"] = "5",
            [$"Tapt:Gateway:Tenants:{LimitedTenant}:MaxConcurrentJobs"] = "1",
            ["Tapt:Gateway:Live:RenewInterval"] = "00:00:10",
            // As run.sh does: the Orleans Dashboard on (every test then runs with its grain-call profiler and log stream).
            ["Tapt:Dashboard:Enabled"] = "true",
            ["Tapt:Accelerator"] = "cpu",
            // Two tuning threads: one deliberately slow batch (the quota test) must not starve the other tests' jobs.
            ["Tapt:Engine:Threads"] = "2",
            ["Tapt:Engine:MaxBatchSize"] = "8",
            ["Tapt:Engine:QueueCapacity"] = "16",
            ["Tapt:Engine:TorchThreads"] = "1",
            ["Tapt:Models:Directories:tiny"] = TestModels.TinyDirectory,
            ["Tapt:Storage:ConnectionString"] = Storage.ConnectionString,
            ["Tapt:Storage:ClusteringTable"] = "TaptClusterGatewayTests",
            ["Tapt:Storage:TenantTable"] = "TaptTenantsGatewayTests",
            ["Tapt:Storage:TenantJobTable"] = "TaptTenantJobsGatewayTests",
            // Small enough for a test to fill a tenant.
            ["Tapt:Tenants:MaxVocabularyBytes"] = VocabularyBytesLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Tapt:Storage:ReminderTable"] = "TaptRemindersGatewayTests",
            ["Tapt:Storage:JobStateContainer"] = "tapt-job-state-gateway-tests",
            ["Orleans:ClusterId"] = clusterId,
            ["Orleans:ServiceId"] = clusterId,
            ["Orleans:SiloPort"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Orleans:GatewayPort"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        Settings = settings;
        (Factory, BaseAddress) = await StartAsync(settings);
    }

    /// <summary>Starts a gateway on Kestrel on a free loopback port and waits until it is ready (its cluster answers).</summary>
    public static async Task<(GatewayFactory Factory, Uri BaseAddress)> StartAsync(IReadOnlyDictionary<string, string> settings,
        Action<ILoggingBuilder>? logging = null)
    {
        var factory = new GatewayFactory(settings, logging);
        factory.UseKestrel(0);
        factory.StartServer();
        var addresses = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var baseAddress = new Uri(addresses.First().Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
        using var http = new HttpClient { BaseAddress = baseAddress };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await http.GetAsync("/health/ready")).StatusCode != HttpStatusCode.OK)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the gateway did not become ready");
            await Task.Delay(200);
        }
        return (factory, baseAddress);
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Factory is not null) await Factory.DisposeAsync();
        }
        finally
        {
            Storage?.Dispose();   // never leave the emulator running
        }
    }

    /// <summary>An HTTP client for the gateway with no key.</summary>
    public HttpClient Anonymous() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>An HTTP client sending <paramref name="key"/> in X-Api-Key.</summary>
    public HttpClient WithKey(string key)
    {
        var c = Anonymous();
        c.DefaultRequestHeaders.Add("X-Api-Key", key);
        return c;
    }

    public HttpClient Operator() => WithKey(OperatorKey);

    /// <summary>Creates a tenant through the operator API; returns its id and first key.</summary>
    public async Task<(string TenantId, string Key)> CreateTenantAsync(string? tenantId = null, string prefix = "t")
    {
        tenantId ??= $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(40, prefix.Length + 25)];
        using var op = Operator();
        var response = await op.PostAsJsonAsync("/api/tenants", new { id = tenantId, keyName = "tests" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (tenantId, created.GetProperty("key").GetProperty("secret").GetString()!);
    }

    /// <summary>A tenant with the Fashion-MNIST vocabulary "fashion" and prompt configuration "default" on the tiny model.</summary>
    public async Task<(string TenantId, string Key, HttpClient Http)> TenantWithSetupAsync(string prefix = "t", int? steps = null, int? views = null,
        double minimumConfidence = 0.5, string? tenantId = null)
    {
        var (id, key) = await CreateTenantAsync(tenantId, prefix);
        var http = WithKey(key);
        (await http.PostAsJsonAsync("/api/vocabularies", new { name = "fashion", labels = TestModels.FashionLabels })).EnsureSuccessStatusCode();
        (await http.PostAsJsonAsync("/api/prompt-configurations", new
        {
            name = "default",
            model = TestModels.Tiny,
            steps,
            views,
            flagging = new { minimumConfidence },
        })).EnsureSuccessStatusCode();
        return (id, key, http);
    }

    /// <summary>Creates a job against "fashion"/"default"; returns its id.</summary>
    public static async Task<string> CreateJobAsync(HttpClient http, string? name = null, int seed = 0)
    {
        var response = await http.PostAsJsonAsync("/api/jobs", new { vocabulary = "fashion", promptConfiguration = "default", seed, name });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("jobId").GetString()!;
    }

    /// <summary>A multipart body with one file part per image.</summary>
    public static MultipartFormDataContent Images(IEnumerable<(string Name, byte[] Bytes)> images)
    {
        var content = new MultipartFormDataContent();
        foreach (var (name, bytes) in images)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            content.Add(part, "images", name);
        }
        return content;
    }

    public static IEnumerable<(string Name, byte[] Bytes)> FashionImages(IEnumerable<int> indices) =>
        indices.Select(i => ($"fashion-{i}.png", TestModels.FashionPng(i)));

    public static async Task<UploadReceipt> UploadAsync(HttpClient http, string jobId, IEnumerable<(string Name, byte[] Bytes)> images)
    {
        var response = await http.PostAsync($"/api/jobs/{jobId}/images", Images(images));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<UploadReceipt>(Json))!;
    }

    /// <summary>Polls the job until it completes or is cancelled.</summary>
    public static async Task<JsonElement> WaitForJobAsync(HttpClient http, string jobId, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var job = await http.GetFromJsonAsync<JsonElement>($"/api/jobs/{jobId}");
            if (job.GetProperty("state").GetString() is "completed" or "cancelled") return job;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {jobId} still {job}");
            await Task.Delay(150);
        }
    }

    /// <summary>The API's JSON conventions, for reading responses into the gateway's own records.</summary>
    public static readonly JsonSerializerOptions Json = CreateJson();

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        GatewayJson.Configure(o);
        return o;
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>The real gateway (its Program) with the fixture's settings, and optionally a test's own log providers.</summary>
public sealed class GatewayFactory(IReadOnlyDictionary<string, string> settings, Action<ILoggingBuilder>? logging = null) : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (k, v) in settings) builder.UseSetting(k, v);
        builder.UseEnvironment("Production");
        builder.ConfigureServices(services => services.AddSingleton<TaptPlatform.Gateway.Live.ILiveSender>(sp =>
            new ThrottledLiveSender(ActivatorUtilities.CreateInstance<TaptPlatform.Gateway.Live.HubLiveSender>(sp))));
        builder.ConfigureLogging(l =>
        {
            l.ClearProviders();
            if (Environment.GetEnvironmentVariable("TAPT_TEST_LOG") is { Length: > 0 } level)
                l.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ").SetMinimumLevel(Enum.Parse<LogLevel>(level, ignoreCase: true));
            logging?.Invoke(l);
        });
    }
}

[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayFixture>
{
    public const string Name = "gateway";
}
