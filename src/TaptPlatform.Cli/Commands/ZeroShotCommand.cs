using System.Diagnostics;
using System.Globalization;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt zero-shot</c>: zero-shot accuracy of a CLIP directory on a Fashion-MNIST split or a labelled image folder.</summary>
public static class ZeroShotCommand
{
    public const string Usage =
        "usage: tapt zero-shot [--model DIR] [--split test|train] [--template \"a photo of a {}.\"] [--batch N] [--data DIR] [--dataset DIR] [--device cpu|cuda]\n" +
        "\n" +
        "Classifies every image of the split (default: the full 10 000-image test split) by the prompt, one per class\n" +
        "(the template with the lower-cased class name), most similar to it, and prints the accuracy and per-class accuracy.\n" +
        "--dataset DIR classifies a folder with one sub-folder per label instead, decoded as the platform decodes uploads\n" +
        "(the model's preprocessor_config.json: resize filter, shorter side, centre crop).";

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help") || argv.Contains("-h")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, []);
        var modelDir = ModelLocator.Resolve(a.Optional("model"));
        var split = a.Optional("split") ?? "test";
        var template = a.Optional("template") ?? "a photo of a {}.";
        var batch = a.Int("batch", 500, 1, 100_000);
        var data = a.Optional("data");
        var folder = a.Optional("dataset");
        var device = DeviceOption.Parse(a.Optional("device"));
        a.RejectUnknown();
        if (a.Positional.Count > 0) throw new CliException($"unexpected argument '{a.Positional[0]}' ({Usage.Split('\n')[0]})");
        if (split is not ("test" or "train")) throw new CliException($"--split must be test or train, got '{split}'");
        if (folder is not null && data is not null) throw new CliException("--dataset (an image folder) and --data (a Fashion-MNIST idx folder) exclude each other");
        var format = ToFormat(template);

        using var ckpt = ClipCheckpoint.Load(modelDir, device);
        IImageDataset images = folder is null
            ? new GreyImageDataset(FashionMnist.Load(split, data))
            : ImageFolderDataset.Open(folder).Decode(ckpt.Preprocessor.ImageOptions);
        var source = folder is null ? $"Fashion-MNIST {split}" : $"{folder} (decoded with resample {ckpt.Preprocessor.Resampling.ToString().ToLowerInvariant()})";
        var sw = Stopwatch.StartNew();
        var result = ZeroShot.Evaluate(ckpt, images, format, batch);
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
