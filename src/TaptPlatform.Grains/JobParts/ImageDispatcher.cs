using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly;
using TaptPlatform.Contracts;
using TaptPlatform.Grains.Telemetry;

namespace TaptPlatform.Grains.JobParts;

/// <summary>What the dispatcher needs of the job it works for (the job grain; its calls run on the grain's scheduler).</summary>
public interface IDispatchedJob
{
    string JobId { get; }

    bool HasResult(int index);

    /// <summary>
    /// The request with the image: its bytes (from memory or its blob), or for a large image the mark that the model
    /// grain reads its stored blob; null when the stored image is missing.
    /// </summary>
    Task<TuningRequest?> WithImageAsync(TuningRequest template, CancellationToken ct);

    /// <summary>Records the image's result once: an outcome, or a failure with its reason.</summary>
    Task RecordAsync(TuningReply reply);

    /// <summary>Why the job waits (null: it dispatches again).</summary>
    Task SetWaitingAsync(string? waiting);
}

/// <summary>
/// Hands a job's images without a result to its model grain, at most <see cref="JobOptions.MaxInFlight"/> at a time,
/// each retried by <see cref="Retries"/>: transient failures (no accelerator silo, a silo died, storage down, a
/// timeout) without limit while the job waits, permanent ones up to <see cref="JobOptions.MaxAttempts"/>, refusals
/// never; an image that cannot be classified gets a failed result.
/// </summary>
public sealed class ImageDispatcher(JobOptions options, IDispatchedJob job, ILogger log)
{
    private readonly ResiliencePipeline _retries = Retries.Create(options.RetryDelay, options.MaxRetryDelay, options.MaxAttempts,
        onRetry: async e =>
        {
            if (e is TuningFailedException { Transient: false }) return;
            Activity.Current?.AddEvent(new ActivityEvent("retry", tags: new ActivityTagsCollection { ["exception.type"] = e.GetType().Name }));
            log.LogDebug(e, "Job {Job}: an image waits ({Error})", job.JobId, e.Message);
            await job.SetWaitingAsync(WaitReasons.For(e));
        });

    /// <summary>Dispatches <paramref name="pending"/> until each has a result or <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(IModelGrain model, IEnumerable<int> pending, Func<int, TuningRequest> request, CancellationToken ct)
    {
        var queue = new Queue<int>(pending);
        var inFlight = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            while (inFlight.Count < Math.Max(1, options.MaxInFlight) && queue.TryDequeue(out var index))
                inFlight.Add(ProcessAsync(model, request(index), ct));
            if (inFlight.Count == 0) break;
            inFlight.Remove(await Task.WhenAny(inFlight));
        }
    }

    private async Task ProcessAsync(IModelGrain model, TuningRequest template, CancellationToken ct)
    {
        var index = template.ImageIndex;
        using var activity = TaptTelemetry.Jobs.StartActivity("tapt.job.image");
        activity?.SetTag(TaptTelemetry.TenantAttribute, template.TenantId);
        activity?.SetTag(TaptTelemetry.JobAttribute, job.JobId);
        activity?.SetTag(TaptTelemetry.ImageAttribute, index);
        var context = Retries.Context(ct);
        try
        {
            await _retries.ExecuteAsync(async (_, _) =>
            {
                if (ct.IsCancellationRequested || job.HasResult(index)) return;
                if (await job.WithImageAsync(template, ct) is not { } request)
                {
                    await job.RecordAsync(new TuningReply.Failed(index, TuningReply.MissingInput));
                    return;
                }
                activity?.AddEvent(new ActivityEvent("tune"));
                var reply = await model.TuneAsync(request);
                if (ct.IsCancellationRequested) return;
                await job.RecordAsync(reply);
                await job.SetWaitingAsync(null);
            }, context, 0);
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // Cancelled: images without a result stay without one.
        }
        catch (Exception e) when (e is TaptRequestException or TuningFailedException)
        {
            // Refused, or failed permanently MaxAttempts times: the image gets a failed result.
            await job.RecordAsync(new TuningReply.Failed(index, e.Message));
        }
        finally
        {
            Retries.Return(context);
        }
    }
}
