using Microsoft.Extensions.Logging;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// Keeps a running job's work going on its grain. <see cref="Start"/> runs the work unless it runs already and adds a
/// keep-alive timer that restarts work which ended while the job still runs and renews the job's slot; the resume
/// reminder brings the job back after its silo dies. Once the job no longer runs, the timer and the reminder go.
/// </summary>
internal sealed class RunningWork(Grain grain, Func<bool> isRunning, Func<Task> work, Func<Task> renew, Action<TimeSpan> delayDeactivation,
    ILogger log, string what)
{
    /// <summary>The keep-alive timer's period.</summary>
    public static readonly TimeSpan KeepAlivePeriod = TimeSpan.FromSeconds(30);

    private Task? _running;
    private IGrainTimer? _keepAlive;

    public void Start()
    {
        if (!isRunning() || _running is { IsCompleted: false }) return;
        delayDeactivation(TimeSpan.FromHours(12));
        _running = work();
        _keepAlive ??= grain.RegisterGrainTimer(KeepAliveAsync, new GrainTimerCreationOptions(KeepAlivePeriod, KeepAlivePeriod)
        {
            Interleave = true,
            KeepAlive = true,
        });
    }

    /// <summary>The resume reminder fired: the work starts again if the job runs, else the reminder goes.</summary>
    public Task ReceiveReminderAsync(string reminderName)
    {
        if (reminderName != ResumeReminder.Name) return Task.CompletedTask;
        if (isRunning())
        {
            Start();
            return Task.CompletedTask;
        }
        return RemoveReminderAsync();
    }

    public Task EnsureReminderAsync() => ResumeReminder.EnsureAsync(grain, log, what);

    public Task RemoveReminderAsync() => ResumeReminder.RemoveAsync(grain, log, what);

    /// <summary>Drops the timer and the reminder (the job ended, or its data is being erased).</summary>
    public Task StopAsync()
    {
        _keepAlive?.Dispose();
        _keepAlive = null;
        return RemoveReminderAsync();
    }

    private async Task KeepAliveAsync(CancellationToken ct)
    {
        if (isRunning())
        {
            Start();
            await renew();
            return;
        }
        await StopAsync();
    }
}
