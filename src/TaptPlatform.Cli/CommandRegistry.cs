namespace TaptPlatform.Cli;

/// <summary>The command table beyond the core ones; each command lives in Commands/.</summary>
public static partial class CommandRegistry
{
    public static void AddExtraCommands(IDictionary<string, (string Summary, Func<string[], int> Run)> commands)
    {
        foreach (var (name, summary, run) in Extra()) commands[name] = (summary, run);
    }

    private static IEnumerable<(string Name, string Summary, Func<string[], int> Run)> Extra()
    {
        yield return ("prompts", "train (APT), calibrate or show TAPT prompt artifacts", Commands.PromptsCommand.Run);
        yield return ("classify", "classify images with the TAPT defense", Commands.ClassifyCommand.Run);
        yield return ("eval", "clean and robust accuracy of CLIP, APT and TAPT under an attack", Commands.EvalCommand.Run);
        yield return ("bench", "throughput and peak memory of TAPT per design and view count", Commands.BenchCommand.Run);
        yield return ("train-clip", "train the default CLIP from scratch on Fashion-MNIST's training split", Commands.TrainClipCommand.Run);
        yield return ("submit", "upload a folder of images to a gateway as a job (--watch: live progress, then results)", Commands.SubmitCommand.Run);
        yield return ("loadtest", "many tenants submitting jobs to a gateway at once: throughput, latency, live delivery, none lost (against the engine alone)", Commands.LoadTestCommand.Run);
        yield return ("audit", "list a tenant's flagged images from a gateway", Commands.AuditCommand.Run);
        yield return ("samples", "write sample images: Fashion-MNIST test images and attacked ones the defense recovers", Commands.SamplesCommand.Run);
        yield return ("zero-shot", "zero-shot accuracy of a CLIP model on a Fashion-MNIST split", Commands.ZeroShotCommand.Run);
    }
}
