using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaptPlatform.Cli.Progress;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt prompts calibrate</c>: the reference statistics (and test-time settings) of a prompt artifact.</summary>
public static class PromptsCalibrateCommand
{
    private sealed record Setup(string Path, string DatasetName, int Count, bool Augment, bool Attacked, double Eps, int Seed, string? Reference, TaptOptions Settings);

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompts = CommonOptions.Prompts();
        var dataset = CliOptions.Defaulted("--dataset", "fashion-mnist", "fashion-mnist, or a folder with one sub-folder per label", "fashion-mnist|DIR");
        var images = CliOptions.Int("--images", 2000, "training images the statistics are computed on", 2, 1_000_000);
        var noAugment = CliOptions.Flag("--no-augment", "use the images as they are instead of random resized crops and flips");
        var attacked = CliOptions.Flag("--attacked", "also compute the statistics of P_adv on PGD-2 images");
        var eps = CliOptions.Number("--eps", 1.0 / 255, "PGD budget of --attacked", 0, 1);
        var seed = CliOptions.Int("--seed", 2, "seed of the draw, the augmentation and the attack");
        var reference = CliOptions.OptionalChoice("--reference", "the adversarial reference TAPT aligns to (default: the artifact's)", "clean-images", "pgd-images");
        var overrides = new TaptSettingOverrides("tapt-");
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("calibrate", """
            Computes the reference statistics of a prompt artifact on training images and records the test-time settings
            (the --tapt-* options, default: the artifact's).
            """)
        {
            model, prompts, dataset, images, noAugment, attacked, eps, seed, reference, device, threads,
        };
        overrides.AddTo(command);
        command.SetAction(r =>
        {
            var dev = DeviceOption.Parse(r.GetValue(device));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var (ckpt, clip) = Session.LoadModel(r.GetValue(model), dev);
            using var _ = ckpt;
            var path = r.GetValue(prompts) ?? System.IO.Path.Combine(ckpt.Directory, Session.DefaultArtifactName);
            if (r.GetValue(reference) == "pgd-images" && !r.GetValue(attacked)) throw new CliException("--reference pgd-images needs --attacked");
            using var artifact = Session.LoadArtifact(path, ckpt);
            // The test-time settings recorded for this model; the library defaults stay the paper's.
            var setup = new Setup(path, r.GetValue(dataset)!, r.GetValue(images), !r.GetValue(noAugment), r.GetValue(attacked), r.GetValue(eps),
                r.GetValue(seed), r.GetValue(reference), overrides.Apply(r, artifact.Settings));
            return Execute(setup, ckpt, clip, artifact, TaptCli.ArgumentsOf(r));
        });
        return command;
    }

    private static int Execute(Setup setup, ClipCheckpoint ckpt, PromptedClip clip, PromptArtifact artifact, string commandLine)
    {
        var (path, datasetName, count, augment, attacked, eps, seed, reference, settings) = setup;
        if (artifact.Clean is null) throw new CliException($"{path} has no clean prompts; run 'tapt prompts train' without --only");
        var data = Session.LoadDataset(datasetName, "train", ckpt);
        var vocabulary = Session.Vocabulary(data);
        var indices = DatasetSampling.Sample(data.Count, count, seed);
        var layers = ckpt.Config.Vision.NumHiddenLayers;
        var augmenter = new ViewAugmenter();
        var clock = Stopwatch.StartNew();

        // The same augmentation the test-time views get (their code calibrates with train-time augmentation).
        IEnumerable<Tensor> Batches(bool pgd, CliProgress progress)
        {
            var rng = new Random(seed);
            var generator = new Generator((ulong)seed);
            var attack = new PgdAttack(eps, 2, eps, randomStart: true, AttackLosses.CrossEntropy, "PGD");
            for (var s = 0; s < indices.Length; s += 64)
            {
                var batch = indices.Skip(s).Take(64).ToArray();
                using var scope = NewDisposeScope();
                var x = data.Images(batch, clip.ImageSize).to(clip.Device);
                if (pgd)
                {
                    var y = tensor(batch.Select(i => (long)data.Label(i)).ToArray()).to(clip.Device);
                    x = attack.Perturb(img => clip.Classify(img, vocabulary, artifact.Adversarial), x, y, generator);
                }
                if (augment)
                {
                    using var __ = no_grad();
                    x = stack(Enumerable.Range(0, batch.Length).Select(i =>
                        ViewAugmenter.Apply(x[i], augmenter.Sample(clip.ImageSize, clip.ImageSize, rng), clip.ImageSize, clip.ImageSize).squeeze(0)).ToArray());
                }
                x.MoveToOuterDisposeScope();
                yield return x;
                x.Dispose();
                progress.Report(Math.Min(s + 64, indices.Length), indices.Length);
            }
        }
        ReferenceStatistics Compute(PromptSet prompts, bool pgd, string description)
        {
            using var progress = CliProgress.Start("prompts calibrate", "images");
            return StatisticsCalibrator.Compute(clip, prompts, Batches(pgd, progress), layers, description);
        }
        var how = augment ? "train images, RandomResizedCrop+flip views" : "train images, unaugmented";
        Console.Error.WriteLine($"statistics of P_adv on clean images ({indices.Length})");
        var advStats = Compute(artifact.Adversarial, false, $"P_adv, clean {how}");
        Console.Error.WriteLine("statistics of P_clean on clean images");
        var cleanStats = Compute(artifact.Clean, false, $"P_clean, clean {how}");
        ReferenceStatistics? attackedStats = null;
        if (attacked)
        {
            Console.Error.WriteLine($"statistics of P_adv on PGD-2 images (eps {eps:G4})");
            attackedStats = Compute(artifact.Adversarial, true, $"P_adv, PGD-2 eps={eps:G4} {how}");
        }
        var provenance = (JsonObject)artifact.Provenance.DeepClone();
        provenance["calibration"] = new JsonObject
        {
            ["command"] = "tapt prompts calibrate " + commandLine,
            ["dataset"] = datasetName,
            ["split"] = "train",
            ["images"] = indices.Length,
            ["augment"] = augment,
            ["attacked"] = attacked,
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
        };
        using var updated = new PromptArtifact
        {
            Shape = artifact.Shape,
            ModelChecksum = artifact.ModelChecksum,
            Adversarial = artifact.Adversarial,
            Clean = artifact.Clean,
            AdversarialStatistics = advStats,
            CleanStatistics = cleanStats,
            AttackedStatistics = attackedStats ?? artifact.AttackedStatistics,
            AdversarialReferenceSource = reference ?? artifact.AdversarialReferenceSource,
            Settings = settings,
            Provenance = provenance,
        };
        updated.Save(path);
        Console.WriteLine($"calibrated {path} on {indices.Length} images in {clock.Elapsed.TotalSeconds:F0} s");
        return 0;
    }
}
