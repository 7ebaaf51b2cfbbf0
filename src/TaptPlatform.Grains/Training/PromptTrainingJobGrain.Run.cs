using Microsoft.Extensions.Logging;
using Polly;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.JobParts;

namespace TaptPlatform.Grains.Training;

/// <summary>The running part of <see cref="PromptTrainingJobGrain"/>: the chain of worker steps, resume and the end.</summary>
public sealed partial class PromptTrainingJobGrain
{
    private RunningWork? _runningWork;
    private ResiliencePipeline? _steps;

    /// <summary>A step is retried up to 20 times while no accelerator silo takes it (a silo died); a refused or permanently failed one not.</summary>
    private ResiliencePipeline Steps => _steps ??= Retries.Create(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), maxPermanentFailures: 1, maxAttempts: 20,
        onRetry: async e =>
        {
            log.LogInformation("Prompt training {Job}: a step waits ({Error})", JobId, e.Message);
            _waiting = WaitReasons.For(e);
            await NotifyAsync(null);
        });

    public Task ReceiveReminder(string reminderName, TickStatus status) => Running.ReceiveReminderAsync(reminderName);

    private RunningWork Running => _runningWork ??= new RunningWork(this, () => S.Definition is not null && S.State == JobState.Running, RunAsync,
        () => Slots.RenewIfDueAsync(), DelayDeactivation, log, $"Prompt training {JobId}");

    private void StartRunning() => Running.Start();

    private Task EnsureReminderAsync() => Running.EnsureReminderAsync();

    private Task UnregisterReminderAsync() => Running.RemoveReminderAsync();

    private PromptTrainingWork Work()
    {
        var d = S.Definition!;
        return new PromptTrainingWork(d.TenantId, JobId, d.Request, [.. d.Vocabulary.Labels.Select(l => l.Label)], PromptTexts.Of(d.Vocabulary),
            [.. S.Images.Select(i => i.Label)], [.. S.Train], [.. S.Validation]);
    }

    private async Task RunAsync()
    {
        var tenantId = S.Definition!.TenantId;
        try
        {
            await RunStepsAsync();
        }
        finally
        {
            // However the run ended (completed, failed, or cancelled: the cancel may still be giving the slots back), nothing
            // resumes from a checkpoint any more.
            if (S.State != JobState.Running || _stop.IsCancellationRequested) await TrainingCheckpoints.ForgetLastAsync(store, tenantId, JobId, S.Curve.Count, log);
        }
    }

    private async Task RunStepsAsync()
    {
        var def = S.Definition!;
        using var scope = log.BeginScope("Tenant {TenantId} prompt training {JobId}", def.TenantId, JobId);
        var work = Work();
        try
        {
            if (S.Before is null)
            {
                var before = await StepAsync(0, (w, c) => w.BaselineAsync(work, c));
                if (S.State != JobState.Running) return;
                S.Before = before;
                await Saved.SaveAsync();
                await NotifyAsync(null);
            }
            while (S.Curve.Count < EpochsTotal && S.State == JobState.Running)
            {
                var step = S.Curve.Count;
                var (epoch, checkpoint) = await StepAsync(step, (w, c) => w.TrainEpochAsync(work, step, c));
                if (S.State != JobState.Running) return;
                if (S.Curve.Count != step) continue;   // a step recorded twice (a resumed call raced a late one): keep the first
                // Stored here, not by the worker: what the run ends with (below, in RunAsync) then sees every checkpoint written.
                await store.PutFileAsync(def.TenantId, JobId, TrainingCheckpoints.PathOf(step + 1), BinaryData.FromBytes(checkpoint), "application/octet-stream");
                if (S.State != JobState.Running) return;
                S.Curve.Add(epoch);
                _waiting = null;
                await Saved.SaveAsync();
                await NotifyAsync(epoch);
                await TrainingCheckpoints.ForgetAsync(store, def.TenantId, JobId, step, log);   // the next epoch starts from step + 1
            }
            if (S.State != JobState.Running) return;
            var outcome = await StepAsync(EpochsTotal, (w, c) => w.FinishAsync(work, c));
            if (S.State != JobState.Running) return;
            await Slots.ReleaseAsync();   // first: whoever sees it completed may start the next one
            S.Artifact = outcome.Artifact;
            S.After = outcome.After;
            S.State = JobState.Completed;
            S.FinishedAt = clock.GetUtcNow();
            _waiting = null;
            await store.PutFileAsync(def.TenantId, JobId, ReportPath, BinaryData.FromString(PromptTrainingReport.Build(Status(), def).ToJsonString(PromptTrainingReport.Json)),
                "application/json");
            await Saved.SaveAsync();
            log.LogInformation("Prompt training {Job} completed: {Artifact} v{Version}", JobId, outcome.Artifact.Name, outcome.Artifact.Version);
        }
        catch (Exception) when (S.State != JobState.Running || _stop.IsCancellationRequested)
        {
            return;   // cancelled while a step ran: CancelAsync records it (it may still be giving the slots back)
        }
        catch (Exception e)
        {
            await JobEnds.FailAsync(S, e, Slots, clock.GetUtcNow(), () => Saved.SaveAsync(), log, $"Prompt training {JobId}");
        }
        await NotifyAsync(null);
        if (S.State != JobState.Running) await UnregisterReminderAsync();
    }

    /// <summary>One step on a live accelerator silo's worker, picked again on every attempt (so a step whose silo died goes to another).</summary>
    private async Task<T> StepAsync<T>(int step, Func<IPromptTrainingWorkerGrain, CancellationToken, Task<T>> call)
    {
        var context = Retries.Context(_stop.Token);
        try
        {
            return await Steps.ExecuteAsync(async (c, s) => await call(Worker(s), c.CancellationToken), context, step);
        }
        finally
        {
            Retries.Return(context);
        }
    }

    private IPromptTrainingWorkerGrain Worker(int step)
    {
        var silos = acceleratorSilos.Current();
        if (silos.Count == 0) throw new TuningFailedException("no accelerator silo is up", transient: true);
        var spread = (uint)StringComparer.Ordinal.GetHashCode(JobId) + (uint)step;
        return GrainFactory.GetGrain<IPromptTrainingWorkerGrain>(silos[(int)(spread % (uint)silos.Count)].ToParsableString());
    }
}
