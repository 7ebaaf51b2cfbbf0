using static TorchSharp.torch;

namespace TaptPlatform.Vision;

/// <summary>The device setting: "cpu" or "cuda[:N]". A CUDA build only swaps the TorchSharp package.</summary>
public static class ComputeDevice
{
    public static Device Parse(string name)
    {
        var s = name.Trim().ToLowerInvariant();
        if (s == "cpu") return CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{name}' requested but CUDA is not available in this build (TorchSharp-cpu) or on this machine");
            return s == "cuda" ? CUDA : new Device(s);
        }
        throw new ArgumentException($"unknown device '{name}' (use cpu, cuda or cuda:N)");
    }
}
