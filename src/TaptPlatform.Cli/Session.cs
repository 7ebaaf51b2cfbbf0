using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli;

/// <summary>What most commands need: the model, its prompt artifact, the dataset and the device.</summary>
public static class Session
{
    public const string DefaultArtifactName = "tapt-prompts.safetensors";

    public static (ClipCheckpoint Checkpoint, PromptedClip Clip) LoadModel(string? modelOption, Device device)
    {
        var dir = ModelLocator.Resolve(modelOption);
        var ckpt = ClipCheckpoint.Load(dir, device);
        return (ckpt, new PromptedClip(ckpt, device));
    }

    /// <summary>--prompts FILE, or the model directory's tapt-prompts.safetensors.</summary>
    public static PromptArtifact LoadArtifact(string? option, ClipCheckpoint checkpoint)
    {
        var path = option ?? Path.Combine(checkpoint.Directory, DefaultArtifactName);
        if (!File.Exists(path))
            throw new CliException(option is null
                ? $"no --prompts given and {path} does not exist; train prompts with 'tapt prompts train'"
                : $"prompt artifact not found: {path}");
        return PromptArtifact.Load(path, checkpoint);
    }

    /// <summary>"fashion-mnist" (Debian's dataset-fashion-mnist) or a folder with one sub-folder per label.</summary>
    public static IImageDataset LoadDataset(string name, string split, ClipCheckpoint checkpoint)
    {
        if (name.Equals("fashion-mnist", StringComparison.OrdinalIgnoreCase))
        {
            if (split is not ("train" or "test")) throw new CliException($"--split must be train or test, got '{split}'");
            return new GreyImageDataset(FashionMnist.Load(split));
        }
        if (Directory.Exists(name)) return ImageFolderDataset.Open(name).Decode(checkpoint.Preprocessor.ImageOptions);
        throw new CliException($"--dataset must be fashion-mnist or an existing folder with one sub-folder per label, got '{name}'");
    }

    public static LabelVocabulary Vocabulary(IImageDataset data, string template = LabelVocabulary.DefaultTemplate) =>
        new(data.ClassNames.Select(c => c.ToLowerInvariant()).ToArray(), template: template);
}
