using static TorchSharp.torch;

namespace TaptPlatform.Cli;

public static class DeviceOption
{
    /// <summary>"cpu" (default), "cuda" or "cuda:N"; $TAPT_DEVICE when the option is absent.</summary>
    public static Device Parse(string? option)
    {
        var s = option ?? Environment.GetEnvironmentVariable("TAPT_DEVICE") ?? "cpu";
        try
        {
            return TaptPlatform.Vision.ComputeDevice.Parse(s);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message);
        }
    }
}
