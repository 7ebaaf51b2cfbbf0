using Microsoft.Extensions.Logging;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Slots;

namespace TaptPlatform.Grains.JobParts;

/// <summary>The part of a job's state that says where the job is in its life (an evaluation's, a training run's).</summary>
public interface IJobLife
{
    JobState State { get; set; }
    DateTimeOffset? StartedAt { get; set; }
    DateTimeOffset? FinishedAt { get; set; }
    string? Error { get; set; }
}

/// <summary>
/// How a job that holds running slots ends before its work is done: cancelled by its tenant, or failed. Either way the
/// slots go back first (whoever sees the end may start the next job), then the end is recorded and saved.
/// </summary>
internal static class JobEnds
{
    public const string CancelledReason = "cancelled";

    /// <summary>Undoes a start in memory when it could not be recorded (memory says what storage says).</summary>
    public static void ForgetStart(IJobLife job)
    {
        job.State = JobState.Open;
        job.StartedAt = null;
    }

    /// <summary>Cancels the job: <paramref name="stop"/> cancels the running work's calls, which stop within a step.</summary>
    public static async Task CancelAsync(IJobLife job, CancellationTokenSource stop, JobSlots slots, DateTimeOffset now, Func<Task> saveAsync)
    {
        var wasRunning = job.State == JobState.Running;
        stop.Cancel();   // synchronously, in the grain's turn: the run sees it before anything else interleaves
        if (wasRunning) await slots.ReleaseAsync();
        End(job, CancelledReason, now);
        await saveAsync();
    }

    /// <summary>
    /// Records a failure of the running work. A state that cannot be saved is only logged: storage still says running,
    /// so the job's reminder resumes it.
    /// </summary>
    public static async Task FailAsync(IJobLife job, Exception error, JobSlots slots, DateTimeOffset now, Func<Task> saveAsync, ILogger log, string what)
    {
        log.LogWarning(error, "{What} failed", what);
        await slots.ReleaseAsync();
        End(job, error.Message, now);
        try
        {
            await saveAsync();
        }
        catch (Exception w)
        {
            log.LogWarning(w, "{What}: state not saved", what);
        }
    }

    private static void End(IJobLife job, string error, DateTimeOffset now)
    {
        job.State = JobState.Cancelled;
        job.Error = error;
        job.FinishedAt = now;
    }
}
