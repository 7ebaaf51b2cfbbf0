using TaptPlatform.Gateway.Hosting;

// The TaptPlatform gateway. Configuration (appsettings.json, environment TAPT__..., command line):
//   Tapt:Gateway:Mode            client (default: joins a cluster of separate silos) | all-in-one (co-hosts a silo)
//   Tapt:Gateway:OperatorKey     the operator's key (creates tenants, issues their keys)
//   Tapt:ApiKeys:SigningKey      signs tenant keys (the same on every silo and gateway; required)
//   Tapt:Gateway:Limits:*        RequestsPerSecond, Burst, MaxConcurrentJobs, ImagesPerDay (Tapt:Gateway:Tenants:{id}:* per tenant)
//   Tapt:Storage:ConnectionString, Orleans:ClusterId / Orleans:ServiceId, and in all-in-one mode the silo's settings
//   Tapt:Dashboard:Enabled       the Orleans Dashboard at /dashboard/ (all-in-one mode, loopback clients only)
//   OTEL_EXPORTER_OTLP_ENDPOINT  exports metrics, traces and logs over OTLP; Logging:Console:FormatterName=json for JSON logs
// The content root is the application's own folder, so appsettings.json is found wherever the process is started from
// (the console's files are embedded in the assembly).
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddTaptOrleans();
builder.AddTaptGateway();
var app = builder.Build();
app.MapTaptGateway();
// Read now: the lifetime cannot be asked once the host has been disposed.
var stopping = app.Lifetime.ApplicationStopping;
try
{
    app.Run();
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    // Asked to stop (SIGTERM, Ctrl+C) while still starting: the start was cancelled, which is no crash.
}

/// <summary>The entry point, visible to the integration tests' WebApplicationFactory.</summary>
public partial class Program;
