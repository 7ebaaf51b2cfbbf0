using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TaptPlatform.Silo.Hosting;

// A TaptPlatform silo. Configuration (appsettings.json, environment TAPT__..., command line):
//   Tapt:Accelerator        cpu | cuda | cpu-only
//   Tapt:Engine:Threads     tuning threads (accelerator silos); also QueueCapacity, MaxBatchSize, Device, Precision, TorchThreads
//   Tapt:Models:Root        folder of model directories (default: the nearest "models" folder)
//   Tapt:Storage:ConnectionString   Azure Storage (default: Azurite's development account)
//   Orleans:ClusterId / Orleans:ServiceId, Orleans:AdvertisedIP (default 127.0.0.1), Orleans:SiloPort / Orleans:GatewayPort
//   OTEL_EXPORTER_OTLP_ENDPOINT (or Tapt:Telemetry:OtlpEndpoint)   exports metrics, traces and logs over OTLP when set
//   Logging:Console:FormatterName=json   JSON log lines with the tenant and job ids of their scopes
// The content root is the application's own folder, so appsettings*.json are found wherever the process is started from.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddTaptTelemetry("tapt-silo");
builder.UseOrleans(silo => silo.UseTaptSilo(builder.Configuration));
var host = builder.Build();
// Read now: the lifetime cannot be asked once the host has been disposed.
var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
try
{
    await host.RunAsync();
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    // Asked to stop (SIGTERM, Ctrl+C) while still starting: the start was cancelled, which is no crash.
}
