using Microsoft.Extensions.Logging;

namespace TaptPlatform.Grains;

/// <summary>
/// The once-a-minute "resume" reminder that brings a running job or evaluation back after its silo dies. Failures are
/// logged, not thrown: without a reminder service the work still resumes on its next call.
/// </summary>
internal static class ResumeReminder
{
    public const string Name = "resume";

    public static async Task EnsureAsync(Grain grain, ILogger log, string what)
    {
        try
        {
            await grain.RegisterOrUpdateReminder(Name, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        }
        catch (Exception e)
        {
            log.LogWarning(e, "{What}: no resume reminder (is a reminder service configured?); it resumes on its next call", what);
        }
    }

    public static async Task RemoveAsync(Grain grain, ILogger log, string what)
    {
        try
        {
            if (await grain.GetReminder(Name) is { } r) await grain.UnregisterReminder(r);
        }
        catch (Exception e)
        {
            log.LogDebug(e, "{What}: reminder not removed", what);
        }
    }
}
