using System.Globalization;
using Microsoft.Extensions.Logging;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// The blobs a prompt training run resumes from, <c>results/checkpoint-{epochs done}.safetensors</c> in the job's
/// folder, written by the job from what the worker returns after each epoch. A checkpoint lives while the run can resume from it: the job forgets
/// the one an epoch started from once that epoch is recorded, and whatever is left when the run ends. A delete that
/// fails is logged and left to retention; it never fails the job.
/// </summary>
public static class TrainingCheckpoints
{
    private const string Prefix = "results/checkpoint-";

    public static string PathOf(int epochsDone) => $"{Prefix}{epochsDone.ToString("D4", CultureInfo.InvariantCulture)}.safetensors";

    /// <summary>Forgets the checkpoint after <paramref name="epochsDone"/> epochs (there is none before the first).</summary>
    public static async Task ForgetAsync(IArtifactStore store, string tenantId, string jobId, int epochsDone, ILogger log)
    {
        if (epochsDone <= 0) return;
        try
        {
            await store.DeleteFileAsync(tenantId, jobId, PathOf(epochsDone));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning(e, "Prompt training {Job}: its checkpoint after {Epochs} epoch(s) stays until retention removes it", jobId, epochsDone);
        }
    }

    /// <summary>
    /// Forgets what can be left when the run ends (completed, cancelled or failed) after <paramref name="epochsRecorded"/>
    /// epochs: the checkpoint of the last recorded epoch and the one the job stored for an epoch it then did not record. The
    /// earlier ones went as each next epoch was recorded.
    /// </summary>
    public static async Task ForgetLastAsync(IArtifactStore store, string tenantId, string jobId, int epochsRecorded, ILogger log)
    {
        await ForgetAsync(store, tenantId, jobId, epochsRecorded, log);
        await ForgetAsync(store, tenantId, jobId, epochsRecorded + 1, log);
    }
}
