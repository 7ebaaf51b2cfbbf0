using TaptPlatform.Cli.Commands;
using TaptPlatform.Gateway.Tests.Infrastructure;
using TaptPlatform.Grains.Tests.Infrastructure;

namespace TaptPlatform.Gateway.Tests;

/// <summary><c>tapt loadtest</c> against the real gateway: a short run, every result accounted for.</summary>
[Collection(GatewayCollection.Name)]
public sealed class LoadTestCommandTests(GatewayFixture gateway)
{
    [Fact]
    public async Task A_short_load_run_accounts_for_every_image_once_and_measures_each_result_event()
    {
        var settings = new LoadSettings(gateway.BaseAddress, GatewayFixture.OperatorKey, Tenants: 2, Duration: TimeSpan.FromSeconds(2),
            ImagesPerJob: 3, JobsPerTenant: 2, Drain: TimeSpan.FromSeconds(90), TenantPrefix: "lt", PlatformModel: TestModels.Tiny, Pids: [Environment.ProcessId]);
        var log = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));

        var report = await new LoadRun(settings, LoadTestCommand.FashionPngs(16), log).RunAsync(timeout.Token);

        Assert.True(report.Errors == 0, log.ToString());
        Assert.True(report.JobsStarted >= 4, $"{report.JobsStarted} jobs");   // each of the 4 workers ran at least one job
        Assert.Equal(report.JobsStarted, report.JobsFinished);
        Assert.Equal(0, report.UnfinishedJobs);
        Assert.Equal(3 * report.JobsStarted, report.ImagesSubmitted);
        Assert.Equal(report.ImagesSubmitted, report.Results);
        Assert.Equal(0, report.Lost);
        Assert.Equal(0, report.Duplicates);
        Assert.Equal(0, report.LiveMissing);
        Assert.Equal(0, report.LiveDuplicates);
        // Every result came live, with the gateway's time of sending before its arrival.
        Assert.Equal(report.Results, report.Latency.Count);
        Assert.Equal(report.Results, report.Delivery.Count);
        Assert.True(report.Delivery.P50 >= 0 && report.Latency.P50 > 0);
        Assert.True(report.Memory[Environment.ProcessId].PeakMiB > 0);
        // The test gateway's silo tunes in this process: its engine threads' CPU is counted apart from the rest.
        Assert.True(report.TuningCpuSeconds.GetValueOrDefault(Environment.ProcessId) > 0, "no CPU time of tapt-tuning threads");
        Assert.True(report.TuningCpuSeconds[Environment.ProcessId] <= report.CpuSeconds[Environment.ProcessId]);
        // JIT and GC of the gateway's process during the load, from its /metrics.
        Assert.NotNull(report.GatewayRuntime);
        Assert.True(report.GatewayRuntime.JitSeconds >= 0 && report.GatewayRuntime.GcPauseSeconds >= 0);
    }
}
