using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli;

/// <summary>A usage or input error found by a command itself: printed as one line, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);

/// <summary>Which exceptions are the user's input problems (one-line message) rather than bugs (stack trace).</summary>
public static class CliErrors
{
    public static bool IsUserFacing(Exception e) => e is ClipCheckpointException or PromptArtifactException or DatasetException
        or ImageRejectedException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException
        or FormatException or UnauthorizedAccessException or ArgumentException;
}
