using System.Globalization;
using Microsoft.Extensions.Logging;
using TaptPlatform.Grains.Storage;

namespace TaptPlatform.Grains.Training;

/// <summary>
/// The blobs a prompt training run resumes from, <c>results/checkpoint-{epochs done}.safetensors</c> in the job's
/// folder, written by the worker after each epoch. A checkpoint lives while the run can resume from it: the job forgets
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

    /// <summary>Forgets every checkpoint of the job: its run has ended (completed, cancelled or failed) and resumes from none.</summary>
    public static async Task ForgetAllAsync(IArtifactStore store, string tenantId, string jobId, ILogger log)
    {
        try
        {
            var folder = BlobArtifactStore.JobPrefix(jobId);
            foreach (var a in await store.ListAsync(tenantId, jobId))
                if (a.Name.StartsWith(folder + Prefix, StringComparison.Ordinal))
                    await store.DeleteFileAsync(tenantId, jobId, a.Name[folder.Length..]);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            log.LogWarning(e, "Prompt training {Job}: its checkpoints stay until retention removes them", jobId);
        }
    }
}
