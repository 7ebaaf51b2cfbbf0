using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using TaptPlatform.Cli.Progress;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt zero-shot</c>: zero-shot accuracy of a CLIP directory on a Fashion-MNIST split or a labelled image folder.</summary>
public static class ZeroShotCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var split = CliOptions.Choice("--split", "test", "the Fashion-MNIST split", "test", "train");
        var template = CliOptions.Defaulted("--template", "a photo of a {}.", "the prompt; {} (or {0}) is the lower-cased class name");
        var batch = CliOptions.Int("--batch", 500, "images per batch", 1, 100_000);
        var data = CliOptions.Text("--data", "Fashion-MNIST idx folder (default: $TAPT_FASHION_MNIST or /usr/share/datasets/fashion-mnist)", "DIR");
        var folder = CliOptions.Text("--dataset", "a folder with one sub-folder per label instead of Fashion-MNIST", "DIR");
        var device = CommonOptions.Device();
        var command = new Command("zero-shot", """
            Zero-shot accuracy of a CLIP model on a Fashion-MNIST split or a labelled image folder.
            Classifies every image of the split (default: the full 10 000-image test split) by the prompt, one per class
            (the template with the lower-cased class name), most similar to it, and prints the accuracy and per-class accuracy.
            --dataset DIR classifies a folder with one sub-folder per label instead, decoded as the platform decodes uploads
            (the model's preprocessor_config.json: resize filter, shorter side, centre crop).
            """)
        {
            model, split, template, batch, data, folder, device,
        };
        command.SetAction(r => Execute(r.GetValue(model), r.GetValue(split)!, r.GetValue(template)!, r.GetValue(batch), r.GetValue(data),
            r.GetValue(folder), r.GetValue(device)));
        return command;
    }

    /// <summary>Runs <c>tapt zero-shot</c> with these arguments; a usage error throws <see cref="CliException"/>.</summary>
    public static int Run(string[] argv) => TaptCli.RunCommand(Create(), argv);

    private static int Execute(string? modelOption, string split, string template, int batch, string? data, string? folder, string? deviceOption)
    {
        var modelDir = ModelLocator.Resolve(modelOption);
        var device = DeviceOption.Parse(deviceOption);
        if (folder is not null && data is not null) throw new CliException("--dataset (an image folder) and --data (a Fashion-MNIST idx folder) exclude each other");
        var format = ToFormat(template);

        using var ckpt = ClipCheckpoint.Load(modelDir, device);
        IImageDataset images = folder is null
            ? new GreyImageDataset(FashionMnist.Load(split, data))
            : ImageFolderDataset.Open(folder).Decode(ckpt.Preprocessor.ImageOptions);
        var source = folder is null ? $"Fashion-MNIST {split}" : $"{folder} (decoded with resample {ckpt.Preprocessor.Resampling.ToString().ToLowerInvariant()})";
        var sw = Stopwatch.StartNew();
        ZeroShotResult result;
        using (var progress = CliProgress.Start("zero-shot", "images"))
            result = ZeroShot.Evaluate(ckpt, images, format, batch, (done, total) => progress.Report(done, total));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"zero-shot accuracy {result.Accuracy:P2} ({result.Correct}/{result.Count}) on {source}, template \"{template}\", model {ckpt.Directory}, {sw.Elapsed.TotalSeconds:F1}s"));
        var width = images.ClassNames.Max(n => n.Length);
        for (var c = 0; c < images.ClassNames.Count; c++)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {images.ClassNames[c].PadRight(width)}  {result.PerClassAccuracy[c],7:P1}  \"{result.Prompts[c]}\""));
        return 0;
    }

    /// <summary>"{}" (Python style) or "{0}" mark where the class name goes; other braces are literal.</summary>
    public static string ToFormat(string template)
    {
        var marker = template.Contains("{}", StringComparison.Ordinal) ? "{}" : template.Contains("{0}", StringComparison.Ordinal) ? "{0}" : null;
        if (marker is null) throw new CliException($"--template needs a {{}} where the class name goes, got '{template}'");
        var parts = template.Split(marker);
        return string.Join("{0}", parts.Select(p => p.Replace("{", "{{", StringComparison.Ordinal).Replace("}", "}}", StringComparison.Ordinal)));
    }
}
