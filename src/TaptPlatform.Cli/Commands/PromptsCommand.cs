using System.CommandLine;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt prompts train|calibrate|show</c>: the offline stages of TAPT; <c>upload|list|download|delete</c>: a tenant's own artifacts on a gateway.</summary>
public static class PromptsCommand
{
    public static Command Create()
    {
        var command = new Command("prompts", """
            The offline stages of TAPT: train the prompts (APT), calibrate their statistics, show an artifact.
            Training uses the train split only; the artifact defaults to MODEL/tapt-prompts.safetensors.
            upload, list, download and delete manage the tenant's own artifacts on a gateway (--server, --key).
            """)
        {
            PromptsTrainCommand.Create(), PromptsCalibrateCommand.Create(), CreateShow(),
        };
        foreach (var remote in PromptsRemoteCommand.Create()) command.Subcommands.Add(remote);
        return command;
    }

    private static Command CreateShow()
    {
        var model = CommonOptions.Model();
        var prompts = CommonOptions.Prompts();
        var device = CommonOptions.Device();
        var command = new Command("show", "Shows a prompt artifact: its design, statistics, test-time settings and provenance.") { model, prompts, device };
        command.SetAction(r => Show(r.GetValue(model), r.GetValue(prompts), r.GetValue(device)));
        return command;
    }

    private static int Show(string? modelOption, string? path, string? deviceOption)
    {
        var (ckpt, _) = Session.LoadModel(modelOption, DeviceOption.Parse(deviceOption));
        using var __ = ckpt;
        using var artifact = Session.LoadArtifact(path, ckpt);
        Console.WriteLine($"design {artifact.Shape.Design}, {artifact.Shape.TokensPerLayer} tokens, depth {artifact.Shape.VisionDepth} vision / {artifact.Shape.TextDepth} text");
        Console.WriteLine($"model {artifact.ModelChecksum}");
        foreach (var (name, s) in new[] { ("adversarial", artifact.AdversarialStatistics), ("clean", artifact.CleanStatistics), ("attacked", artifact.AttackedStatistics) })
            Console.WriteLine($"statistics {name}: {(s is null ? "none" : $"{s.Layers} layers, {s.Images} images ({s.Description})")}");
        Console.WriteLine($"settings {System.Text.Json.JsonSerializer.Serialize(artifact.Settings)}");
        Console.WriteLine($"provenance {artifact.Provenance.ToJsonString()}");
        return 0;
    }
}
