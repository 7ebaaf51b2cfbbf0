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

    [Fact]
    public async Task Sliced_work_lets_the_units_other_tenants_queued_meanwhile_run_between_its_slices()
    {
        using var catalog = new ModelCatalog(Options.Create(new ModelCatalogOptions()), NullLogger<ModelCatalog>.Instance);
        using var engine = new EvaluationEngine(Options.Create(new TuningEngineOptions { Slice = TimeSpan.FromSeconds(5) }), catalog,
            NullLogger<EvaluationEngine>.Instance);
        Assert.Equal(TimeSpan.FromSeconds(5), engine.Slice);
        var order = new List<string>();
        var others = new List<Task<int>>();
        var slices = 0;
        await engine.RunInSlicesAsync("trainer", _ =>
        {
            order.Add($"slice {++slices}");
            if (slices == 1)
            {
                // Queued while the first slice runs: one unit of another tenant.
                others.Add(engine.RunAsync("evaluator", _ =>
                {
                    order.Add("evaluator");
                    return 0;
                }));
            }
            return slices == 3;
        });
        await Task.WhenAll(others);
        // The evaluator waited for one slice, not the three.
        Assert.Equal(["slice 1", "evaluator", "slice 2", "slice 3"], order);
    }
}
