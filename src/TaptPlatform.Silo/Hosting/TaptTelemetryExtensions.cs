using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using TaptPlatform.Grains.Telemetry;

namespace TaptPlatform.Silo.Hosting;

/// <summary>
/// Logs, metrics and traces of a TaptPlatform process (silo or gateway):
/// <list type="bullet">
/// <item>console logs as configured (<c>Logging:Console:FormatterName=json</c> for JSON lines, which then include the
/// logging scopes — tenant and job ids — unless <c>Logging:Console:FormatterOptions:IncludeScopes</c> says otherwise);</item>
/// <item>OpenTelemetry with the platform's meters and activity sources, Orleans' and the .NET runtime's, exported over
/// OTLP only when an endpoint is configured (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>, or <c>Tapt:Telemetry:OtlpEndpoint</c>).</item>
/// </list>
/// </summary>
public static class TaptTelemetryExtensions
{
    /// <summary>Orleans' meter (grain calls, messaging, activations, storage…).</summary>
    public const string OrleansMeter = "Microsoft.Orleans";

    /// <summary>The .NET runtime's built-in meter (GC, thread pool, exceptions; .NET 9 and later).</summary>
    public const string RuntimeMeter = "System.Runtime";

    /// <summary>Orleans' activity sources for grain calls made by application code, and grain storage.</summary>
    public static readonly IReadOnlyList<string> OrleansSources =
        [Orleans.Diagnostics.ActivitySources.ApplicationGrainActivitySourceName, Orleans.Diagnostics.ActivitySources.StorageActivitySourceName];

    /// <summary>Orleans' runtime spans (system targets, membership, directory): many and frequent, so only on request.</summary>
    public const string OrleansRuntimeSource = Orleans.Diagnostics.ActivitySources.RuntimeActivitySourceName;

    /// <summary>
    /// Adds JSON-log scopes and OpenTelemetry. <paramref name="metrics"/> and <paramref name="tracing"/> add a host's own
    /// instrumentation (the gateway's ASP.NET Core and Prometheus); <paramref name="alwaysMeter"/> keeps the meter provider
    /// even without OTLP (for a scrape endpoint). Without OTLP, no tracer provider is built, so no span is ever created.
    /// </summary>
    public static IHostApplicationBuilder AddTaptTelemetry(this IHostApplicationBuilder builder, string defaultServiceName,
        Action<MeterProviderBuilder>? metrics = null, Action<TracerProviderBuilder>? tracing = null, bool alwaysMeter = false)
    {
        var configuration = builder.Configuration;
        if (configuration["Logging:Console:FormatterOptions:IncludeScopes"] is null)
            builder.Services.Configure<JsonConsoleFormatterOptions>(o => o.IncludeScopes = true);

        var otlp = OtlpEndpoint(configuration);
        if (otlp is null && !alwaysMeter) return builder;

        var serviceName = configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } named ? named : defaultServiceName;
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceVersion: typeof(TaptTelemetry).Assembly.GetName().Version?.ToString()))
            .WithMetrics(m =>
            {
                m.AddMeter([.. TaptTelemetry.MeterNames, OrleansMeter, RuntimeMeter]);
                metrics?.Invoke(m);
            });
        if (otlp is null) return builder;

        otel.WithTracing(t =>
        {
            t.AddSource([.. TaptTelemetry.SourceNames, .. OrleansSources]);
            if (configuration.GetValue<bool>("Tapt:Telemetry:OrleansRuntimeTraces")) t.AddSource(OrleansRuntimeSource);
            tracing?.Invoke(t);
        });
        // Logs go over OTLP too, with their scopes as attributes (TenantId, JobId).
        otel.WithLogging(configureBuilder: null, configureOptions: o =>
        {
            o.IncludeScopes = true;
            o.IncludeFormattedMessage = true;
        });
        otel.UseOtlpExporter(OtlpProtocol(configuration), otlp);
        return builder;
    }

    /// <summary>
    /// The OTLP endpoint: <c>Tapt:Telemetry:OtlpEndpoint</c>, else the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>;
    /// null when neither is set (nothing is exported). A value that is not an absolute http(s) URI is refused.
    /// </summary>
    public static Uri? OtlpEndpoint(IConfiguration configuration)
    {
        var value = configuration["Tapt:Telemetry:OtlpEndpoint"] is { Length: > 0 } own ? own : configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        if (string.IsNullOrWhiteSpace(value)) return null;
        if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new InvalidOperationException($"the OTLP endpoint '{value}' is not an absolute http(s) URI (Tapt:Telemetry:OtlpEndpoint or OTEL_EXPORTER_OTLP_ENDPOINT)");
        return uri;
    }

    /// <summary><c>OTEL_EXPORTER_OTLP_PROTOCOL</c>: <c>grpc</c> (the default) or <c>http/protobuf</c>.</summary>
    private static OpenTelemetry.Exporter.OtlpExportProtocol OtlpProtocol(IConfiguration configuration) =>
        (configuration["Tapt:Telemetry:OtlpProtocol"] ?? configuration["OTEL_EXPORTER_OTLP_PROTOCOL"])?.Trim().ToLowerInvariant() switch
        {
            null or "" or "grpc" => OpenTelemetry.Exporter.OtlpExportProtocol.Grpc,
            "http/protobuf" => OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf,
            var p => throw new InvalidOperationException($"unsupported OTLP protocol '{p}' (use grpc or http/protobuf)"),
        };
}
