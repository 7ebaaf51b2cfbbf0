namespace TaptPlatform.Grains;

/// <summary>What a job or an evaluation tells its tenant while it retries a failed step.</summary>
internal static class WaitReasons
{
    /// <summary>"waiting for storage" when the failure came from Azure Storage, else "waiting for an accelerator silo".</summary>
    public static string For(Exception e) => FromStorage(e)
        ? $"waiting for storage ({e.GetType().Name})"
        : $"waiting for an accelerator silo ({e.GetType().Name})";

    // The Azure SDK throws RequestFailedException, or after its own retries an AggregateException of them or of HttpRequestException.
    private static bool FromStorage(Exception e) => e switch
    {
        Azure.RequestFailedException or HttpRequestException => true,
        AggregateException a => a.InnerExceptions.Any(FromStorage),
        _ => e.InnerException is { } inner && FromStorage(inner),
    };
}
