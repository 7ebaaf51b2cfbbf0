using System.Globalization;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt train-clip</c>: trains a small CLIP from scratch on Fashion-MNIST's training split.</summary>
public static class TrainClipCommand
{
    public static readonly string Usage =
        "usage: tapt train-clip --out DIR [--epochs N] [--batch N] [--lr X] [--seed S] [--resume] [--threads N] [--holdout N] [--limit N] [--data DIR]\n" +
        "                       [--image-size N] [--patch-size N] [--augment P] [--augment-min-scale S] [--vision-width N] [--vision-layers N]\n" +
        "\n" +
        "Trains CLIP contrastively from scratch on the Fashion-MNIST training split (60 000 images, captions from\n" +
        "templates x class names) and writes a Hugging Face CLIP directory (config.json, model.safetensors, vocab.json,\n" +
        "merges.txt, preprocessor_config.json). The test split is never read. The state is saved after every epoch in\n" +
        "DIR/.train-state/ (and on Ctrl+C); --resume continues from it.\n" +
        "\n" +
        $"  --epochs N    epochs (default {ClipTrainer.DefaultEpochs})\n" +
        $"  --batch N     images per contrastive batch (default {ClipTrainer.DefaultBatchSize})\n" +
        $"  --lr X        peak AdamW learning rate (default {ClipTrainer.DefaultLearningRate.ToString(CultureInfo.InvariantCulture)})\n" +
        $"  --seed S      seed for initialisation, order, captions and augmentation (default {ClipTrainer.DefaultSeed})\n" +
        "  --threads N   torch threads (default: torch's choice)\n" +
        "  --holdout N   keep N training images out and report their zero-shot accuracy after each epoch (default 0)\n" +
        "  --limit N     train on a deterministic sample of N training images (default: all)\n" +
        "  --data DIR    Fashion-MNIST idx folder (default $TAPT_FASHION_MNIST or /usr/share/datasets/fashion-mnist)\n" +
        $"  --image-size N  model input side; the 28x28 images are upsampled bilinearly (default {ClipTrainer.DefaultConfig().Vision.ImageSize})\n" +
        $"  --patch-size N  ViT patch side, must divide the input side (default {ClipTrainer.DefaultConfig().Vision.PatchSize})\n" +
        $"  --augment P     share of images given a random resized crop and flip (default {ClipTrainer.DefaultAugmentation.Probability.ToString(CultureInfo.InvariantCulture)})\n" +
        $"  --augment-min-scale S  smallest crop area fraction (default {ClipTrainer.DefaultAugmentation.MinScale.ToString(CultureInfo.InvariantCulture)})\n" +
        $"  --vision-width N  ViT width, a multiple of 32; MLP 4x, heads of 32 channels (default {ClipTrainer.DefaultConfig().Vision.HiddenSize})\n" +
        $"  --vision-layers N ViT blocks (default {ClipTrainer.DefaultConfig().Vision.NumHiddenLayers})\n" +
        "\n" +
        "The defaults, with --holdout 2000 --threads 2, reproduce models/fashion-clip-small.";

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help") || argv.Contains("-h")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, ["resume"]);
        var output = a.Required("out");
        var epochs = a.Int("epochs", ClipTrainer.DefaultEpochs, 1, 10_000);
        var batch = a.Int("batch", ClipTrainer.DefaultBatchSize, 2, 65_536);
        var lr = a.Double("lr", ClipTrainer.DefaultLearningRate, 1e-9, 10);
        var seed = a.Int("seed", ClipTrainer.DefaultSeed);
        var resume = a.Flag("resume");
        var threads = a.Int("threads", 0, 0, 1024);
        var holdout = a.Int("holdout", 0, 0, 59_999);
        var limit = a.Int("limit", 0, 0, int.MaxValue);
        var data = a.Optional("data");
        var defaults = ClipTrainer.DefaultConfig();
        var imageSize = a.Int("image-size", defaults.Vision.ImageSize, 8, 1024);
        var patchSize = a.Int("patch-size", defaults.Vision.PatchSize, 1, 1024);
        var augment = a.Double("augment", ClipTrainer.DefaultAugmentation.Probability, 0, 1);
        var minScale = a.Double("augment-min-scale", ClipTrainer.DefaultAugmentation.MinScale, 0.01, 1);
        var width = a.Int("vision-width", defaults.Vision.HiddenSize, 8, 4096);
        var layers = a.Int("vision-layers", defaults.Vision.NumHiddenLayers, 1, 64);
        a.RejectUnknown();
        // Heads of 32 channels as the shipped model (128 / 4); the MLP is 4× the width as in CLIP.
        if (width % 32 != 0) throw new CliException($"--vision-width {width} must be a multiple of 32 (heads of 32 channels)");
        if (imageSize % patchSize != 0) throw new CliException($"--patch-size {patchSize} does not divide --image-size {imageSize}");
        if (a.Positional.Count > 0) throw new CliException($"unexpected argument '{a.Positional[0]}' (see tapt train-clip --help)");
        if (File.Exists(output)) throw new CliException($"--out {output} is a file, not a directory");

        var options = new ClipTrainingOptions
        {
            OutputDirectory = output,
            Config = defaults with
            {
                Vision = defaults.Vision with
                {
                    ImageSize = imageSize,
                    PatchSize = patchSize,
                    HiddenSize = width,
                    IntermediateSize = 4 * width,
                    NumAttentionHeads = width / 32,
                    NumHiddenLayers = layers,
                },
            },
            Augmentation = ClipTrainer.DefaultAugmentation with { Probability = augment, MinScale = minScale },
            Epochs = epochs,
            BatchSize = batch,
            LearningRate = lr,
            Seed = seed,
            Resume = resume,
            Threads = threads,
            Holdout = holdout,
            TrainLimit = limit,
            DataRoot = data,
            Log = Console.Error,
        };
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl+C ends the process
            e.Cancel = true;
            Console.Error.WriteLine("interrupt: saving the training state after this step (Ctrl+C again to abort)");
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            ClipTrainingResult result;
            try
            {
                result = ClipTrainer.Train(options, cancel.Token);
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message);
            }
            if (!result.Completed) return 130;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Path.GetFullPath(output)}: {result.ParameterCount:N0} parameters, {result.TotalSteps} steps, final loss {result.LastLoss:F4}, {ClipTrainer.Format(result.Elapsed)}"));
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
