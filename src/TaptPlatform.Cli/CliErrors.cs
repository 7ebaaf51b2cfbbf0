using TaptPlatform.Vision.Clip;

namespace TaptPlatform.Cli;

/// <summary>Which exceptions are the user's input problems (one-line message) rather than bugs (stack trace).</summary>
public static class CliErrors
{
    public static bool IsUserFacing(Exception e) => e is ClipCheckpointException or FileNotFoundException
        or DirectoryNotFoundException or InvalidDataException or FormatException or UnauthorizedAccessException
        || e.GetType().Name is "ImageRejectedException" or "PromptArtifactException" or "DatasetException";
}
