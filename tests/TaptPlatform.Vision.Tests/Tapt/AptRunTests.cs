using System.Text.Json.Nodes;
using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Vision.Tests.Tapt;

public class AptRunTests
{
    private static GreyImageDataset Data(int count)
    {
        var rng = new Random(3);
        var pixels = new byte[count * 24 * 24];
        rng.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(i => i % 4).ToArray();
        return new GreyImageDataset(new LabelledImages(["sneaker", "running shoe", "leather boot", "dress"], pixels, labels, 24, 24));
    }

    private static float[] Flat(PromptSet p) => p.Parameters().SelectMany(t => t.detach().flatten().data<float>().ToArray()).ToArray();

    [Fact]
    public void A_run_checkpointed_after_every_epoch_ends_with_the_prompts_of_an_uninterrupted_run()
    {
        using var t = new TinyTapt();
        var data = Data(8);
        var train = Enumerable.Range(0, 8).ToArray();
        var settings = new AptRunSettings(t.Artifact.Shape, new AptOptions { Epochs = 2, BatchSize = 4, LearningRate = 0.05, Seed = 3 });
        using var straight = AptRun.Start(t.Clip, settings);
        while (!straight.Finished) straight.TrainNext(t.Vocabulary, data, train);

        var checkpoint = Path.Combine(Path.GetTempPath(), $"apt-run-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var first = AptRun.Start(t.Clip, settings))
            {
                Assert.True(first.NextIsAdversarial);
                first.TrainNext(t.Vocabulary, data, train);
                first.Save(checkpoint);
            }
            // Each later epoch in a run of its own, from the checkpoint the one before left.
            for (var step = 1; step < 4; step++)
            {
                using var resumed = AptRun.Resume(t.Clip, settings, checkpoint);
                Assert.Equal(step, resumed.StepsDone);
                Assert.Equal(step < 2, resumed.NextIsAdversarial);
                resumed.TrainNext(t.Vocabulary, data, train);
                resumed.Save(checkpoint);
            }
            using var last = AptRun.Resume(t.Clip, settings, checkpoint);
            Assert.True(last.Finished);
            Assert.Equal(Flat(straight.Adversarial), Flat(last.Adversarial));
            Assert.Equal(Flat(straight.Clean), Flat(last.Clean));
            Assert.NotEqual(Flat(last.Adversarial), Flat(last.Clean));

            using var artifact = last.ToArtifact(data, train, new TaptOptions { Views = 4 }, new JsonObject { ["job"] = "test" }, seed: 1);
            Assert.NotNull(artifact.AdversarialStatistics);
            Assert.NotNull(artifact.CleanStatistics);
            Assert.Equal(8L, artifact.CleanStatistics!.Images);
            var saved = checkpoint + ".artifact";
            artifact.Save(saved);
            using var loaded = PromptArtifact.Load(saved, t.Checkpoint);
            Assert.Equal(Flat(last.Adversarial), Flat(loaded.Adversarial));
            File.Delete(saved);
        }
        finally
        {
            File.Delete(checkpoint);
        }
    }

    [Fact]
    public void Validation_counts_clean_and_robust_accuracy_and_an_attack_never_helps()
    {
        using var t = new TinyTapt();
        var data = Data(12);
        var a = AptRun.Validate(t.Clip, t.Artifact.Adversarial, t.Vocabulary, data, [.. Enumerable.Range(0, 12)], 8.0 / 255, seed: 1, batchSize: 5);
        Assert.Equal(12, a.Images);
        Assert.InRange(a.Clean, 0, 1);
        Assert.True(a.Robust <= a.Clean, $"robust {a.Robust} > clean {a.Clean}");
        var none = AptRun.Validate(t.Clip, t.Artifact.Adversarial, t.Vocabulary, data, [.. Enumerable.Range(0, 12)], 0, seed: 1);
        Assert.Equal(none.Clean, none.Robust);
        Assert.Equal(a.Clean, none.Clean);
    }

    [Fact]
    public void An_epoch_and_a_validation_run_in_one_batch_slices_give_exactly_what_one_call_gives()
    {
        using var t = new TinyTapt();
        var data = Data(6);
        var train = Enumerable.Range(0, 6).ToArray();
        var settings = new AptRunSettings(t.Artifact.Shape, new AptOptions { Epochs = 1, BatchSize = 2, LearningRate = 0.05, Seed = 3 });
        using var whole = AptRun.Start(t.Clip, settings);
        var wholeEpoch = whole.TrainNext(t.Vocabulary, data, train);

        using var sliced = AptRun.Start(t.Clip, settings);
        using var pass = sliced.BeginNext(t.Vocabulary, data, train);
        Assert.Equal(3, pass.Steps);
        var slices = 0;
        while (!pass.TrainFor(TimeSpan.Zero)) slices++;
        Assert.Equal(2, slices);   // a zero budget still trains one batch per slice: 3 batches, the third ends the epoch
        Assert.Equal(0, sliced.StepsDone);
        var slicedEpoch = sliced.Complete(pass);
        Assert.Equal(1, sliced.StepsDone);
        Assert.Equal(Flat(whole.Adversarial), Flat(sliced.Adversarial));
        Assert.Equal(wholeEpoch.Loss, slicedEpoch.Loss);
        Assert.Equal(wholeEpoch.AdversarialAccuracy, slicedEpoch.AdversarialAccuracy);
        Assert.Throws<InvalidOperationException>(() => sliced.Complete(pass));

        int[] held = [0, 1];
        var once = AptRun.Validate(t.Clip, whole.Adversarial, t.Vocabulary, data, held, 8.0 / 255, seed: 2, batchSize: 1);
        using var validation = new AptValidationPass(t.Clip, whole.Adversarial, t.Vocabulary, data, held, 8.0 / 255, seed: 2, batchSize: 1);
        Assert.Throws<InvalidOperationException>(() => validation.Result);
        var validationSlices = 1;
        while (!validation.RunFor(TimeSpan.Zero)) validationSlices++;
        Assert.Equal(2, validationSlices);
        Assert.Equal(once, validation.Result);
    }

    [Fact]
    public void The_split_holds_out_a_share_of_every_class_and_caps_training_at_the_shots()
    {
        var labels = Enumerable.Range(0, 40).Select(i => i % 4).ToArray();
        var (train, validation) = AptSplit.Of(labels, 4, shots: 5, validationFraction: 0.2, seed: 1);
        Assert.Equal(8, validation.Length);
        Assert.Equal(20, train.Length);
        Assert.Empty(train.Intersect(validation));
        Assert.All(Enumerable.Range(0, 4), c => Assert.Equal(2, validation.Count(i => labels[i] == c)));
        var again = AptSplit.Of(labels, 4, 5, 0.2, 1);
        Assert.Equal(train, again.Train);
        Assert.Equal(validation, again.Validation);
        var e = Assert.Throws<ArgumentException>(() => AptSplit.Of([0, 0, 1], 2, 5, 0.2, 1));
        Assert.Contains("at least two", e.Message);
    }
}
