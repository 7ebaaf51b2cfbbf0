using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Evaluation;
using TaptPlatform.Grains.Tuning;

namespace TaptPlatform.Grains.Tests;

public sealed class EvaluationEngineTests
{
    [Fact]
    public async Task A_stopping_engine_cancels_the_running_unit_which_fails_transiently_so_the_job_retries_it_elsewhere()
    {
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions()), NullLogger<ModelCatalog>.Instance);
        var engine = new EvaluationEngine(Options.Create(new TuningEngineOptions()), catalog, NullLogger<EvaluationEngine>.Instance);
        using var started = new ManualResetEventSlim();
        var sawCancellation = false;
        var running = engine.RunAsync("tenant-a", token =>
        {
            started.Set();
            // A long unit: it ends only when its token says so, as the attacks check it between steps.
            while (!token.IsCancellationRequested) Thread.Sleep(5);
            sawCancellation = true;
            token.ThrowIfCancellationRequested();
            return 0;
        });
        var queued = engine.RunAsync("tenant-b", _ => 1);
        Assert.True(started.Wait(TimeSpan.FromMinutes(1)));

        engine.Dispose();

        Assert.True(sawCancellation);
        var stopped = await Assert.ThrowsAsync<TuningFailedException>(() => running);
        Assert.True(stopped.Transient);
        // What had not started never runs, and nothing new is taken.
        Assert.True((await Assert.ThrowsAsync<TuningFailedException>(() => queued)).Transient);
        await Assert.ThrowsAsync<TuningFailedException>(() => engine.RunAsync("tenant-c", _ => 2));
    }
}
