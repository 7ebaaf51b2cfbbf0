using Polly;
using Polly.Retry;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.JobParts;

/// <summary>
/// How jobs and evaluations retry work handed to another grain (Polly): exponential backoff without jitter;
/// a request the callee refuses (<see cref="TaptRequestException"/>) is never retried, a permanent tuning failure up
/// to <c>maxPermanentFailures</c> times in all, anything else (no accelerator silo, a silo died, storage down, a
/// timeout) up to <c>maxAttempts</c>. Callers run it on the grain's scheduler (<see cref="Context"/>), so the work
/// and the callbacks stay single-threaded with the grain's turns.
/// </summary>
public static class Retries
{
    private static readonly ResiliencePropertyKey<int> PermanentFailures = new("tapt.permanent-failures");

    public static ResiliencePipeline Create(TimeSpan firstDelay, TimeSpan maxDelay, int maxPermanentFailures, int maxAttempts = int.MaxValue,
        Func<Exception, ValueTask>? onRetry = null) =>
        new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            MaxRetryAttempts = maxAttempts == int.MaxValue ? int.MaxValue : Math.Max(0, maxAttempts - 1),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = false,
            Delay = firstDelay,
            MaxDelay = maxDelay,
            ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args, maxPermanentFailures)),
            OnRetry = args => onRetry is null || args.Outcome.Exception is not { } e ? ValueTask.CompletedTask : onRetry(e),
        }).Build();

    /// <summary>A context that resumes on the caller's scheduler (an Orleans grain's), to be returned with <see cref="Return"/>.</summary>
    public static ResilienceContext Context(CancellationToken ct) => ResilienceContextPool.Shared.Get(continueOnCapturedContext: true, ct);

    public static void Return(ResilienceContext context) => ResilienceContextPool.Shared.Return(context);

    private static bool ShouldRetry(RetryPredicateArguments<object> args, int maxPermanentFailures)
    {
        if (args.Outcome.Exception is not { } e || args.Context.CancellationToken.IsCancellationRequested) return false;
        switch (e)
        {
            case TaptRequestException:
                return false;
            case TuningFailedException { Transient: false }:
                var failures = args.Context.Properties.GetValue(PermanentFailures, 0) + 1;
                args.Context.Properties.Set(PermanentFailures, failures);
                return failures < maxPermanentFailures;
            default:
                return true;
        }
    }
}
