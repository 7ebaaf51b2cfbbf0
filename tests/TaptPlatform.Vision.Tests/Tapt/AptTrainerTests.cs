using TaptPlatform.Vision.Apt;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Tapt;

public class AptTrainerTests
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
    public void Interrupted_training_resumes_to_the_same_prompts()
    {
        using var t = new TinyTapt();
        var data = Data(8);
        var idx = Enumerable.Range(0, 8).ToArray();
        var options = new AptOptions { Epochs = 3, BatchSize = 4, LearningRate = 0.05 };
        var state = Path.Combine(Path.GetTempPath(), $"apt-{Guid.NewGuid():N}.state");
        try
        {
            using var interrupted = t.Artifact.Adversarial.Clone();
            new AptTrainer(t.Clip, options).Train(interrupted, t.Vocabulary, data, idx, state,
                p => { if (p.Epoch == 2 && p.Step == p.StepsPerEpoch) throw new OperationCanceledException("interrupted"); });
        }
        catch (OperationCanceledException)
        {
        }
        try
        {
            using var straight = t.Artifact.Adversarial.Clone();
            new AptTrainer(t.Clip, options).Train(straight, t.Vocabulary, data, idx, statePath: null);
            using var resumed = t.Artifact.Adversarial.Clone();
            // The state file holds epoch 1 (epoch 2 was interrupted before its save); resuming finishes epochs 2 and 3.
            new AptTrainer(t.Clip, options).Train(resumed, t.Vocabulary, data, idx, state);
            var a = Flat(straight);
            var b = Flat(resumed);
            Assert.Equal(a.Length, b.Length);
            for (var i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-5, $"prompt value {i}: {a[i]} vs {b[i]}");
            Assert.NotEqual(Flat(t.Artifact.Adversarial), a);
        }
        finally
        {
            File.Delete(state);
        }
    }

    [Fact]
    public void Learning_rate_warms_up_then_follows_a_cosine()
    {
        using var t = new TinyTapt();
        var trainer = new AptTrainer(t.Clip, new AptOptions { Epochs = 4, LearningRate = 0.01 });
        Assert.Equal(1e-5, trainer.LearningRateAt(0));
        Assert.Equal(0.005 * (1 + Math.Cos(Math.PI / 4)), trainer.LearningRateAt(1), 10);
        Assert.True(trainer.LearningRateAt(3) < trainer.LearningRateAt(2));
    }

    [Fact]
    public void Clean_training_lowers_the_loss_on_its_data()
    {
        using var t = new TinyTapt();
        var data = Data(8);
        var idx = Enumerable.Range(0, 8).ToArray();
        var losses = new List<double>();
        using var prompts = t.Artifact.Adversarial.Clone();
        new AptTrainer(t.Clip, new AptOptions { Epochs = 6, BatchSize = 8, LearningRate = 0.5, WarmupEpochs = 0, Adversarial = false })
            .Train(prompts, t.Vocabulary, data, idx, null, p => losses.Add(p.Loss));
        Assert.True(losses[^1] < losses[0], $"loss {losses[0]} → {losses[^1]}");
    }
}
