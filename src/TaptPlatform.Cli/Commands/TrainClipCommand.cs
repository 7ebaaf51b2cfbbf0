using System.CommandLine;
using System.Globalization;
using TaptPlatform.Cli.Progress;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt train-clip</c>: trains a small CLIP from scratch on Fashion-MNIST's training split.</summary>
public static class TrainClipCommand
{
    private sealed record Setup(string Output, int Epochs, int Batch, double LearningRate, int Seed, bool Resume, int Threads, int Holdout, int Limit,
        string? Data, int ImageSize, int PatchSize, double Augment, double MinScale, int Width, int Layers);

    public static Command Create()
    {
        var defaults = ClipTrainer.DefaultConfig();
        var output = CliOptions.Required("--out", "the model directory to write", "DIR");
        var epochs = CliOptions.Int("--epochs", ClipTrainer.DefaultEpochs, "epochs", 1, 10_000);
        var batch = CliOptions.Int("--batch", ClipTrainer.DefaultBatchSize, "images per contrastive batch", 2, 65_536);
        var lr = CliOptions.Number("--lr", ClipTrainer.DefaultLearningRate, "peak AdamW learning rate", 1e-9, 10);
        var seed = CliOptions.Int("--seed", ClipTrainer.DefaultSeed, "seed for initialisation, order, captions and augmentation");
        var resume = CliOptions.Flag("--resume", "continue from the state saved in DIR/.train-state/");
        var threads = CliOptions.Int("--threads", 0, "torch threads (0: torch's choice)", 0, 1024);
        var holdout = CliOptions.Int("--holdout", 0, "keep N training images out and report their zero-shot accuracy after each epoch", 0, 59_999);
        var limit = CliOptions.Int("--limit", 0, "train on a deterministic sample of N training images (0: all)", 0, int.MaxValue);
        var data = CliOptions.Text("--data", "Fashion-MNIST idx folder (default: $TAPT_FASHION_MNIST or /usr/share/datasets/fashion-mnist)", "DIR");
        var imageSize = CliOptions.Int("--image-size", defaults.Vision.ImageSize, "model input side; the 28x28 images are upsampled bilinearly", 8, 1024);
        var patchSize = CliOptions.Int("--patch-size", defaults.Vision.PatchSize, "ViT patch side, must divide the input side", 1, 1024);
        var augment = CliOptions.Number("--augment", ClipTrainer.DefaultAugmentation.Probability, "share of images given a random resized crop and flip", 0, 1, "P");
        var minScale = CliOptions.Number("--augment-min-scale", ClipTrainer.DefaultAugmentation.MinScale, "smallest crop area fraction", 0.01, 1, "S");
        var width = CliOptions.Int("--vision-width", defaults.Vision.HiddenSize, "ViT width, a multiple of 32; MLP 4x, heads of 32 channels", 8, 4096);
        var layers = CliOptions.Int("--vision-layers", defaults.Vision.NumHiddenLayers, "ViT blocks", 1, 64);
        var command = new Command("train-clip", """
            Trains the default CLIP from scratch on Fashion-MNIST's training split.
            Trains CLIP contrastively from scratch on the Fashion-MNIST training split (60 000 images, captions from
            templates x class names) and writes a Hugging Face CLIP directory (config.json, model.safetensors, vocab.json,
            merges.txt, preprocessor_config.json). The test split is never read. The state is saved after every epoch in
            DIR/.train-state/ (and on Ctrl+C); --resume continues from it.
            The defaults, with --holdout 2000 --threads 2, reproduce models/fashion-clip-small.
            """)
        {
            output, epochs, batch, lr, seed, resume, threads, holdout, limit, data, imageSize, patchSize, augment, minScale, width, layers,
        };
        command.SetAction(r => Execute(new Setup(r.GetValue(output)!, r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr), r.GetValue(seed),
            r.GetValue(resume), r.GetValue(threads), r.GetValue(holdout), r.GetValue(limit), r.GetValue(data), r.GetValue(imageSize),
            r.GetValue(patchSize), r.GetValue(augment), r.GetValue(minScale), r.GetValue(width), r.GetValue(layers))));
        return command;
    }

    /// <summary>Runs <c>tapt train-clip</c> with these arguments; a usage error throws <see cref="CliException"/>.</summary>
    public static int Run(string[] argv) => TaptCli.RunCommand(Create(), argv);

    private static int Execute(Setup s)
    {
        var (output, epochs, batch, lr, seed, resume, threads, holdout, limit, data, imageSize, patchSize, augment, minScale, width, layers) = s;
        // Heads of 32 channels as the shipped model (128 / 4); the MLP is 4× the width as in CLIP.
        if (width % 32 != 0) throw new CliException($"--vision-width {width} must be a multiple of 32 (heads of 32 channels)");
        if (imageSize % patchSize != 0) throw new CliException($"--patch-size {patchSize} does not divide --image-size {imageSize}");
        if (File.Exists(output)) throw new CliException($"--out {output} is a file, not a directory");
        var defaults = ClipTrainer.DefaultConfig();
        using var progress = CliProgress.Start("train-clip", "steps");

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
            Log = progress.Log,
            Progress = (done, total) => progress.Report(done, total),
            // The display shows the steps; the trainer's own lines are the per-epoch summaries.
            ProgressSeconds = double.PositiveInfinity,
        };
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return; // a second Ctrl+C ends the process
            e.Cancel = true;
            progress.WriteLine("interrupt: saving the training state after this step (Ctrl+C again to abort)");
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
            progress.Dispose();
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
