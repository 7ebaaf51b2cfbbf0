using System.Globalization;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Apt;

/// <summary>What a prompt training run trains: the prompts' shape, APT's settings (their epochs are per prompt set) and the seed.</summary>
public sealed record AptRunSettings(PromptShape Shape, AptOptions Options);

/// <summary>Accuracy of one prompt set on held-out images: clean, and under PGD (<see cref="AptRun.ValidationAttackSteps"/> steps at the run's ε).</summary>
public sealed record AptAccuracy(double Clean, double Robust, int Images);

/// <summary>
/// A whole prompt training run as <c>tapt prompts train</c> then <c>tapt prompts calibrate</c> make it, one epoch per
/// call so a caller can checkpoint between epochs anywhere: steps 0..E−1 train the adversarial prompts (APT, half of each
/// batch PGD-2), steps E..2E−1 the clean prompts; <see cref="Save"/> writes both prompt sets, their momentum and the steps
/// done to one safetensors file that <see cref="Resume"/> continues from exactly. <see cref="ToArtifact"/> computes the
/// reference statistics on the training images and makes the prompt artifact.
/// </summary>
public sealed class AptRun : IDisposable
{
    /// <summary>PGD steps of the held-out robust accuracy (step size ε/4, random start): stronger than training's PGD-2.</summary>
    public const int ValidationAttackSteps = 10;

    private readonly PromptedClip _clip;
    private readonly List<Tensor> _adversarialMomentum;
    private readonly List<Tensor> _cleanMomentum;
    private AptEpochPass? _pending;

    private AptRun(PromptedClip clip, AptRunSettings settings, PromptSet adversarial, PromptSet clean)
    {
        _clip = clip;
        Settings = settings;
        Adversarial = adversarial;
        Clean = clean;
        _adversarialMomentum = AptTrainer.NewMomentum(adversarial);
        _cleanMomentum = AptTrainer.NewMomentum(clean);
    }

    public AptRunSettings Settings { get; }
    public PromptSet Adversarial { get; }
    public PromptSet Clean { get; }

    /// <summary>Epochs finished, adversarial then clean (0..<see cref="TotalSteps"/>).</summary>
    public int StepsDone { get; private set; }

    public int TotalSteps => 2 * Settings.Options.Epochs;
    public bool Finished => StepsDone >= TotalSteps;

    /// <summary>A fresh run: both prompt sets initialised from the seed (as <c>tapt prompts train</c> does).</summary>
    public static AptRun Start(PromptedClip clip, AptRunSettings settings)
    {
        var seed = (ulong)settings.Options.Seed;
        var ckpt = clip.Checkpoint;
        return new AptRun(clip, settings,
            PromptSet.Initialise(settings.Shape, ckpt.Model, ckpt.Tokenizer, new Generator(seed)),
            PromptSet.Initialise(settings.Shape, ckpt.Model, ckpt.Tokenizer, new Generator(seed)));
    }

    /// <summary>A run continued from a checkpoint <see cref="Save"/> wrote (for the same settings).</summary>
    public static AptRun Resume(PromptedClip clip, AptRunSettings settings, string checkpointPath)
    {
        var run = Start(clip, settings);
        try
        {
            var file = SafeTensorsFile.Open(checkpointPath);
            if (!file.Metadata.TryGetValue("steps_done", out var done) || !int.TryParse(done, NumberStyles.None, CultureInfo.InvariantCulture, out var steps)
                || steps < 0 || steps > run.TotalSteps)
                throw new InvalidDataException("the checkpoint does not record how many epochs were done");
            using var _ = no_grad();
            void Load(string prefix, PromptSet prompts, List<Tensor> momentum)
            {
                var parameters = prompts.Parameters().ToList();
                for (var i = 0; i < parameters.Count; i++)
                {
                    using var p = file.ReadFloat32($"{prefix}.p{i:D3}");
                    using var m = file.ReadFloat32($"{prefix}.m{i:D3}");
                    if (!p.shape.SequenceEqual(parameters[i].shape)) throw new InvalidDataException($"the checkpoint's {prefix} prompts do not have this run's shape");
                    parameters[i].copy_(p);
                    momentum[i].copy_(m);
                }
            }
            Load("adv", run.Adversarial, run._adversarialMomentum);
            Load("clean", run.Clean, run._cleanMomentum);
            run.StepsDone = steps;
            return run;
        }
        catch (Exception e) when (e is not InvalidDataException)
        {
            run.Dispose();
            throw new InvalidDataException($"the checkpoint cannot be read: {e.Message}", e);
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    public void Save(string path)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        void Add(string prefix, PromptSet prompts, List<Tensor> momentum)
        {
            var parameters = prompts.Parameters().ToList();
            for (var i = 0; i < parameters.Count; i++)
            {
                tensors[$"{prefix}.p{i:D3}"] = parameters[i];
                tensors[$"{prefix}.m{i:D3}"] = momentum[i];
            }
        }
        Add("adv", Adversarial, _adversarialMomentum);
        Add("clean", Clean, _cleanMomentum);
        SafeTensorsFile.Write(path, tensors, new Dictionary<string, string> { ["steps_done"] = StepsDone.ToString(CultureInfo.InvariantCulture) });
    }

    /// <summary>Whether the next step trains the adversarial prompts (else the clean ones).</summary>
    public bool NextIsAdversarial => StepsDone < Settings.Options.Epochs;

    /// <summary>Trains the next epoch on <paramref name="train"/>; <paramref name="progress"/> may throw to stop it (nothing counts then).</summary>
    public AptEpoch TrainNext(LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> train, Action<AptProgress>? progress = null)
    {
        using var pass = BeginNext(vocabulary, data, train);
        pass.TrainFor(TimeSpan.MaxValue, progress);
        return Complete(pass);
    }

    /// <summary>The next epoch, to train in slices (<see cref="AptEpochPass.TrainFor"/>) and then <see cref="Complete"/>; the caller disposes it.</summary>
    public AptEpochPass BeginNext(LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> train)
    {
        if (Finished) throw new InvalidOperationException("the run is finished");
        var adversarial = NextIsAdversarial;
        var epoch = adversarial ? StepsDone : StepsDone - Settings.Options.Epochs;
        var trainer = new AptTrainer(_clip, Settings.Options with { Adversarial = adversarial });
        var pass = adversarial
            ? trainer.BeginEpoch(Adversarial, _adversarialMomentum, vocabulary, data, train, epoch)
            : trainer.BeginEpoch(Clean, _cleanMomentum, vocabulary, data, train, epoch);
        _pending = pass;
        return pass;
    }

    /// <summary>Counts the epoch <paramref name="pass"/> (from <see cref="BeginNext"/>, finished) as done and returns its figures.</summary>
    public AptEpoch Complete(AptEpochPass pass)
    {
        if (!ReferenceEquals(pass, _pending)) throw new InvalidOperationException("the pass is not this run's next epoch");
        var result = pass.Result;
        _pending = null;
        StepsDone++;
        return result;
    }

    /// <summary>
    /// Clean and robust accuracy of <paramref name="prompts"/> on <paramref name="indices"/>: PGD-<see cref="ValidationAttackSteps"/>
    /// at ε (step ε/4, random start from <paramref name="seed"/>) against the prompts themselves.
    /// </summary>
    public static AptAccuracy Validate(PromptedClip clip, PromptSet prompts, LabelVocabulary vocabulary, IImageDataset data, IReadOnlyList<int> indices,
        double epsilon, int seed, int batchSize = 64, Func<bool>? stop = null)
    {
        using var pass = new AptValidationPass(clip, prompts, vocabulary, data, indices, epsilon, seed, batchSize);
        pass.RunFor(TimeSpan.MaxValue, stop);
        return pass.Result;
    }

    /// <summary>
    /// The trained prompt artifact: both prompt sets, with the reference statistics of each computed on the training images
    /// through random resized crops and flips (as <c>tapt prompts calibrate</c> by default), and <paramref name="settings"/>
    /// as its test-time settings. The caller disposes it (it clones the prompts).
    /// </summary>
    public PromptArtifact ToArtifact(IImageDataset data, IReadOnlyList<int> train, TaptOptions settings, JsonObject provenance, int seed)
    {
        if (!Finished) throw new InvalidOperationException($"the run has {TotalSteps - StepsDone} epoch(s) to go");
        var layers = _clip.Checkpoint.Config.Vision.NumHiddenLayers;
        var size = _clip.ImageSize;
        IEnumerable<Tensor> Views()
        {
            var rng = new Random(seed);
            var augmenter = new ViewAugmenter();
            foreach (var batch in train.Chunk(64))
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var x = data.Images(batch, size);
                var views = stack(Enumerable.Range(0, batch.Length).Select(i =>
                    ViewAugmenter.Apply(x[i], augmenter.Sample(size, size, rng), size, size).squeeze(0)).ToArray());
                views.MoveToOuterDisposeScope();
                yield return views;
                views.Dispose();
            }
        }
        var how = $"clean train images ({train.Count}), RandomResizedCrop+flip views";
        return new PromptArtifact
        {
            Shape = Settings.Shape,
            ModelChecksum = _clip.Checkpoint.Checksum,
            Adversarial = Adversarial.Clone(),
            Clean = Clean.Clone(),
            AdversarialStatistics = StatisticsCalibrator.Compute(_clip, Adversarial, Views(), layers, $"P_adv, {how}"),
            CleanStatistics = StatisticsCalibrator.Compute(_clip, Clean, Views(), layers, $"P_clean, {how}"),
            Settings = settings,
            Provenance = provenance,
        };
    }

    public void Dispose()
    {
        Adversarial.Dispose();
        Clean.Dispose();
        foreach (var m in _adversarialMomentum.Concat(_cleanMomentum)) m.Dispose();
    }
}

/// <summary>A labelled image set split for training: per class, a held-out share for validation and up to the shots per class for training.</summary>
public static class AptSplit
{
    /// <summary>
    /// Per class (images shuffled by <paramref name="seed"/>): ⌈fraction·n⌉ held out (at least one), then up to
    /// <paramref name="shots"/> of the rest for training. <see cref="ArgumentException"/> when a class has fewer than two images.
    /// </summary>
    public static (int[] Train, int[] Validation) Of(IReadOnlyList<int> labels, int classes, int shots, double validationFraction, int seed)
    {
        var byClass = Enumerable.Range(0, classes).Select(_ => new List<int>()).ToArray();
        foreach (var i in DatasetSampling.Sample(labels.Count, labels.Count, seed)) byClass[labels[i]].Add(i);
        var train = new List<int>();
        var validation = new List<int>();
        for (var c = 0; c < classes; c++)
        {
            var images = byClass[c];
            if (images.Count < 2) throw new ArgumentException($"class {c} has {images.Count} image(s): each label needs at least two (one to train on, one to validate)");
            var held = Math.Clamp((int)Math.Ceiling(validationFraction * images.Count), 1, images.Count - 1);
            validation.AddRange(images.Take(held));
            train.AddRange(images.Skip(held).Take(shots));
        }
        return ([.. train.Order()], [.. validation.Order()]);
    }
}
