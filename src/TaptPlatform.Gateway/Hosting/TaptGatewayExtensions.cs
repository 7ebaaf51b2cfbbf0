using System.Globalization;
using System.Net;
using Azure.Data.Tables;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.FileProviders;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Orleans.Dashboard;
using Orleans.Configuration;
using TaptPlatform.Gateway.Api;
using TaptPlatform.Gateway.Auth;
using TaptPlatform.Gateway.Errors;
using TaptPlatform.Gateway.Limits;
using TaptPlatform.Gateway.Live;
using TaptPlatform.Gateway.Telemetry;
using TaptPlatform.Grains;
using TaptPlatform.Grains.Storage;
using TaptPlatform.Silo.Hosting;

namespace TaptPlatform.Gateway.Hosting;

/// <summary>
/// The gateway's capabilities, so a host reads as a list:
/// <code>
/// builder.AddTaptOrleans();   // Orleans client, or a co-hosted silo when Tapt:Gateway:Mode = all-in-one
/// builder.AddTaptGateway();   // API, hub, auth, limits, health, metrics
/// var app = builder.Build();
/// app.MapTaptGateway();       // middleware, endpoints, console
/// </code>
/// </summary>
public static class TaptGatewayExtensions
{
    /// <summary>
    /// Joins the cluster named by <c>Orleans:ClusterId</c>/<c>Orleans:ServiceId</c> through Azure Table membership
    /// (<c>Tapt:Storage</c>): as a client (<c>Tapt:Gateway:Mode</c> = <c>client</c>, the default) or by co-hosting a
    /// silo (<c>all-in-one</c>; its role from <c>Tapt:Accelerator</c>, <c>Tapt:Engine</c>, <c>Tapt:Models</c>).
    /// </summary>
    public static IHostApplicationBuilder AddTaptOrleans(this IHostApplicationBuilder builder)
    {
        var mode = (builder.Configuration[$"{GatewayOptions.Section}:Mode"] ?? GatewayModes.Client).Trim().ToLowerInvariant();
        var storage = builder.Configuration.TaptStorage();
        switch (mode)
        {
            case GatewayModes.Client:
                builder.UseOrleansClient(client => client
                    .Configure<ClusterOptions>(o => ConfigureCluster(o, builder.Configuration))
                    .UseAzureStorageClustering((Orleans.Clustering.AzureStorage.AzureStorageGatewayOptions o) =>
                    {
                        o.TableServiceClient = storage.Tables;
                        o.TableName = storage.ClusteringTable;
                    })
                    .UseConnectionRetryFilter(RetryWhileStarting)
                    .AddActivityPropagation());
                break;
            case GatewayModes.AllInOne:
                builder.UseOrleans(silo =>
                {
                    silo.UseTaptSilo(builder.Configuration);
                    if (TaptDashboardOptions.Read(builder.Configuration) is { Enabled: true } dashboard) silo.AddDashboard(dashboard.Apply);
                });
                break;
            default:
                throw new InvalidOperationException($"unknown {GatewayOptions.Section}:Mode '{mode}' (use {GatewayModes.Client} or {GatewayModes.AllInOne})");
        }
        return builder;
    }

    private static void ConfigureCluster(ClusterOptions o, IConfiguration configuration)
    {
        var cluster = TaptClusterOptions.Read(configuration);
        o.ClusterId = cluster.ClusterId;
        o.ServiceId = cluster.ServiceId;
    }

    /// <summary>Keeps trying to reach the cluster while the gateway starts (silos may start after it).</summary>
    private static async Task<bool> RetryWhileStarting(Exception exception, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        return true;
    }

    /// <summary>The HTTP API, the hub, authentication, limits, problem details, health, OpenAPI and metrics.</summary>
    public static IHostApplicationBuilder AddTaptGateway(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.Section).ValidatedOnStart();
        services.TryAddSingletonTimeProvider();

        services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.Customize);
        services.AddExceptionHandler<GatewayExceptionHandler>();
        services.ConfigureHttpJsonOptions(o => GatewayJson.Configure(o.SerializerOptions));
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        // The form reader's limits follow the gateway's: an upload the gateway accepts is never cut short by a lower one.
        services.AddOptions<Microsoft.AspNetCore.Http.Features.FormOptions>().Configure<IOptions<GatewayOptions>>((f, g) =>
        {
            f.MultipartBodyLengthLimit = g.Value.MaxUploadBytes;
            f.ValueCountLimit = g.Value.MaxImagesPerRequest;
        });
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(o =>
        {
            var g = builder.Configuration.GetSection(GatewayOptions.Section).Get<GatewayOptions>() ?? new GatewayOptions();
            o.Limits.MaxRequestBodySize = Math.Max(Math.Max(g.MaxUploadBytes, g.MaxJsonBytes), g.MaxModelBytes);
            o.AddServerHeader = false;
        });

        // Replaces the host's context factory (registered before this): access_token leaves the query before it is logged.
        services.AddSingleton<IHttpContextFactory>(sp => new AccessTokenRedactingContextFactory(new DefaultHttpContextFactory(sp)));
        services.AddAuthentication(TaptAuth.Scheme).AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(TaptAuth.Scheme, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(TaptAuth.TenantPolicy, p => p.RequireAuthenticatedUser().RequireRole(TaptAuth.TenantRole).RequireClaim(TaptAuth.TenantClaim))
            .AddPolicy(TaptAuth.OperatorPolicy, p => p.RequireAuthenticatedUser().RequireRole(TaptAuth.OperatorRole));
        services.AddTaptApiKeySigning(o => builder.Configuration.GetSection(ApiKeyOptions.Section).Bind(o));
        services.AddSingleton<ApiKeyValidator>();
        services.AddSingleton<KeyRevocationListener>();
        services.AddHostedService(sp => sp.GetRequiredService<KeyRevocationListener>());
        services.AddTaptRateLimits();

        // Large upload parts are staged in the tenant's container, and stored input images are streamed from it (an
        // all-in-one gateway's silo registered these already).
        services.TryAddSingleton(_ =>
        {
            var storage = builder.Configuration.TaptStorage();
            return new TenantContainers(storage.Blobs, storage.Blobs.GetBlobContainerClient(storage.OperatorContainer));
        });
        services.TryAddSingleton<IArtifactStore>(sp => new BlobArtifactStore(sp.GetRequiredService<TenantContainers>()));
        services.TryAddSingleton(sp => new ImageStaging(sp.GetRequiredService<TenantContainers>()));
        services.TryAddSingleton(sp => new PromptArtifactStore(sp.GetRequiredService<TenantContainers>()));
        services.TryAddSingleton(_ =>
        {
            var storage = builder.Configuration.TaptStorage();
            return new ModelStore(storage.Blobs.GetBlobContainerClient(storage.ModelContainer));
        });
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton<JobLabels>();
        services.AddTaptAuditWorkflow();
        services.AddSingleton<ILiveSender, HubLiveSender>();
        services.AddSingleton<LiveConnections>();
        services.AddSingleton<JobEventBridge>();
        services.AddHostedService(sp => sp.GetRequiredService<JobEventBridge>());
        services.AddSingleton<EvaluationEventBridge>();
        services.AddHostedService(sp => sp.GetRequiredService<EvaluationEventBridge>());
        services.AddSingleton<PromptTrainingEventBridge>();
        services.AddHostedService(sp => sp.GetRequiredService<PromptTrainingEventBridge>());
        services.AddSignalR(o =>
            {
                o.MaximumReceiveMessageSize = 32 * 1024;
                o.AddFilter<KeyStillValidFilter>();
            })
            .AddJsonProtocol(o => GatewayJson.Configure(o.PayloadSerializerOptions));

        services.AddHealthChecks().AddCheck<ClusterReadyCheck>("cluster", tags: ["ready"]);
        services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "TaptPlatform gateway";
            doc.Info.Description = "Tenants send their API key in the X-Api-Key header. Errors are RFC 7807 problem documents with a stable `code`. " +
                "Live progress: the SignalR hub at /hubs/jobs (Subscribe(jobId) → snapshot; then steps, imagesCompleted, jobProgress, resync).";
            doc.Components ??= new Microsoft.OpenApi.OpenApiComponents();
            doc.Components.SecuritySchemes ??= new Dictionary<string, Microsoft.OpenApi.IOpenApiSecurityScheme>();
            doc.Components.SecuritySchemes[TaptAuth.Scheme] = new Microsoft.OpenApi.OpenApiSecurityScheme
            {
                Type = Microsoft.OpenApi.SecuritySchemeType.ApiKey,
                In = Microsoft.OpenApi.ParameterLocation.Header,
                Name = TaptAuth.Header,
                Description = "A tenant key (tapt.{tenant}.{keyId}.{secret}.{mac}), or the operator key for /api/tenants.",
            };
            doc.Security ??= [];
            doc.Security.Add(new Microsoft.OpenApi.OpenApiSecurityRequirement { [new Microsoft.OpenApi.OpenApiSecuritySchemeReference(TaptAuth.Scheme, doc)] = [] });
            return Task.CompletedTask;
        }));
        // Metrics always (the /metrics scrape endpoint); traces and OTLP export when an OTLP endpoint is configured.
        builder.AddTaptTelemetry("tapt-gateway",
            metrics: m => m.AddAspNetCoreInstrumentation().AddMeter(GatewayMetrics.MeterName).AddPrometheusExporter(),
            tracing: t => t.AddAspNetCoreInstrumentation(),
            alwaysMeter: true);
        return builder;
    }

    private static void TryAddSingletonTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);
    }

    /// <summary>The middleware pipeline and every endpoint: <c>/api/*</c>, <c>/hubs/jobs</c>, health, <c>/openapi/v1.json</c>, <c>/metrics</c>, the console.</summary>
    public static WebApplication MapTaptGateway(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use(SecurityHeaders);
        app.UseTaptConsole();
        app.UseRouting();
        // The rate limiter first: it picks its bucket from the key alone, so bad keys are counted before any is checked.
        app.UseRateLimiter();
        app.UseAuthentication();
        app.UseTaptBodyLimits();
        app.UseAuthorization();

        var api = app.MapGroup("/api");
        api.MapTenantEndpoints();
        api.MapCatalogEndpoints();
        api.MapJobEndpoints();
        api.MapAuditEndpoints();
        api.MapAuditWorkflow();
        api.MapEvaluationEndpoints();
        api.MapRetentionEndpoints();
        api.MapErasureEndpoints();
        api.MapPromptArtifactEndpoints();
        api.MapModelEndpoints();
        api.MapPromptTrainingEndpoints();

        app.MapHub<JobsHub>(JobsHubMethods.Path);
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });
        app.MapOpenApi();
        // The operator's only: the silo's series are per tenant. Scrape with the operator key in X-Api-Key.
        app.MapPrometheusScrapingEndpoint("/metrics").RequireAuthorization(TaptAuth.OperatorPolicy);
        app.MapTaptDashboard();
        return app;
    }

    /// <summary>
    /// The web console (wwwroot), served from the files embedded in this assembly: the same files wherever the
    /// gateway is started from (./run.sh from the repository root, a published folder, a container, the tests), with
    /// no dependency on the content root or on the Development-only static web assets manifest.
    /// </summary>
    private static void UseTaptConsole(this WebApplication app)
    {
        var files = new ManifestEmbeddedFileProvider(typeof(TaptGatewayExtensions).Assembly, "wwwroot");
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = files });
    }

    /// <summary>
    /// The Orleans Dashboard at <c>Tapt:Dashboard:Path</c> when enabled in the all-in-one mode, answering loopback
    /// clients only (others get 404): it has no authentication and shows grain state and live logs.
    /// </summary>
    private static void MapTaptDashboard(this WebApplication app)
    {
        var dashboard = TaptDashboardOptions.Read(app.Configuration);
        if (!dashboard.Enabled) return;
        var mode = (app.Configuration[$"{GatewayOptions.Section}:Mode"] ?? GatewayModes.Client).Trim().ToLowerInvariant();
        if (mode != GatewayModes.AllInOne)
        {
            app.Logger.LogWarning("{Section}:Enabled is ignored: the Orleans Dashboard is served in the {Mode} mode only", TaptDashboardOptions.Section, GatewayModes.AllInOne);
            return;
        }
        // Not part of the API: kept out of the OpenAPI document.
        app.MapOrleansDashboard(dashboard.Path).AddEndpointFilter(async (context, next) =>
            IsLoopback(context.HttpContext.Connection.RemoteIpAddress) ? await next(context) : Results.NotFound()).ExcludeFromDescription();
        app.Logger.LogInformation("Orleans Dashboard at {Path}/ (loopback clients only)", dashboard.Path);
    }

    internal static bool IsLoopback(IPAddress? address) =>
        address is not null && IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    /// <summary>
    /// Security headers on every response, set when it starts: the exception handler clears the headers of a response
    /// it rewrites as a problem document, so headers set on the way in would be missing from error responses.
    /// </summary>
    private static Task SecurityHeaders(HttpContext context, Func<Task> next)
    {
        context.Response.OnStarting(static state =>
        {
            var h = ((HttpResponse)state).Headers;
            h.XContentTypeOptions = "nosniff";
            h["Referrer-Policy"] = "no-referrer";
            h.XFrameOptions = "DENY";
            h.ContentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
            return Task.CompletedTask;
        }, context.Response);
        return next();
    }
}

/// <summary>Ready when the cluster answers: at least one silo is active.</summary>
public sealed class ClusterReadyCheck(IGrainFactory grains) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return hosts.Count > 0 ? HealthCheckResult.Healthy($"{hosts.Count} active silo(s)") : HealthCheckResult.Unhealthy("no active silo");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy("the cluster does not answer", e);
        }
    }
}
