using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Training;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class ClipTrainerTests : IDisposable
{
    private readonly string _data = SyntheticFashion.CreateDataset();
    private readonly string _out = Directory.CreateTempSubdirectory("tapt-train-").FullName;

    public void Dispose()
    {
        Directory.Delete(_data, recursive: true);
        Directory.Delete(_out, recursive: true);
    }

    private static ClipConfig Tiny() => new()
    {
        Text = new ClipTextConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, MaxPositionEmbeddings = 24 },
        Vision = new ClipVisionConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, ImageSize = 28, PatchSize = 7 },
        ProjectionDim = 32,
    };

    private ClipTrainingOptions Options(string dir) => new()
    {
        OutputDirectory = dir,
        Config = Tiny(),
        Epochs = 2,
        BatchSize = 64,
        LearningRate = 3e-3,
        DataRoot = _data,
        Seed = 7,
        // Light augmentation: with the shipped heavy crops two epochs of a tiny model barely move the loss.
        Augmentation = new Augmentation(MinScale: 0.6, FlipProbability: 0.5, Probability: 0.25),
    };

    [Fact]
    public void Two_epochs_lower_the_loss_and_write_a_loadable_clip_directory()
    {
        var r = ClipTrainer.Train(Options(_out));
        Assert.True(r.Completed);
        Assert.Equal(16, r.TotalSteps); // 512 images / 64 × 2 epochs
        Assert.Equal(2, r.EpochLosses.Count);
        Assert.True(r.EpochLosses[1] < r.EpochLosses[0] - 0.05, $"loss {r.EpochLosses[0]} → {r.EpochLosses[1]}");
        Assert.False(Directory.Exists(Path.Combine(_out, ClipTrainer.StateFolder)));
        foreach (var f in new[] { "config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json" })
            Assert.True(File.Exists(Path.Combine(_out, f)), f);

        using var ckpt = ClipCheckpoint.Load(_out);
        Assert.Equal(ckpt.Tokenizer.VocabularySize, ckpt.Config.Text.VocabSize);
        Assert.Equal(ckpt.Tokenizer.EndId, ckpt.Config.Text.EosTokenId);
        Assert.Equal(ClipTrainer.FashionMnistMean, ckpt.Preprocessor.ImageMean);
        Assert.Equal(28, ckpt.Preprocessor.CropHeight);
        Assert.Equal("pt", SafeTensorsFile.Open(Path.Combine(_out, "model.safetensors")).Metadata["format"]);
        Assert.InRange(ckpt.Model.LogitScale.item<float>(), 0f, (float)Math.Log(100) + 1e-5f);

        var result = ZeroShot.Evaluate(ckpt, new GreyImageDataset(FashionMnist.Load("test", _data)), batch: 50);
        Assert.Equal(128, result.Count);
        Assert.Equal("a photo of a t-shirt/top.", result.Prompts[0]);
        Assert.Equal("a photo of a ankle boot.", result.Prompts[9]);
        Assert.InRange(result.Accuracy, 0.0, 1.0);
    }

    [Fact]
    public void Interrupted_run_resumes_from_the_saved_step_and_ends_where_an_uninterrupted_run_does()
    {
        var straight = Path.Combine(_out, "straight");
        var resumed = Path.Combine(_out, "resumed");
        // 256 of the 512 images: 4 steps per epoch, 8 in all; the run is cut after step 3 (mid-epoch).
        ClipTrainingOptions Small(string dir) => Options(dir) with { TrainLimit = 256 };
        ClipTrainer.Train(Small(straight));

        var first = ClipTrainer.Train(Small(resumed) with { StopAfterStep = 3 });
        Assert.False(first.Completed);
        Assert.Equal(3, first.StepsDone);
        Assert.Equal("step-0000003", File.ReadAllText(Path.Combine(resumed, ClipTrainer.StateFolder, "latest")));
        Assert.False(File.Exists(Path.Combine(resumed, "model.safetensors")));

        var log = new StringWriter();
        var second = ClipTrainer.Train(Small(resumed) with { Resume = true, Log = log });
        Assert.True(second.Completed);
        Assert.Equal(3, second.StartStep);
        Assert.Equal(8, second.TotalSteps);
        Assert.Contains("resuming from step 3/8", log.ToString());

        Assert.Contains("nothing to resume", Assert.Throws<InvalidDataException>(() => ClipTrainer.Train(Small(resumed) with { Resume = true })).Message);

        var a = SafeTensorsFile.Open(Path.Combine(straight, "model.safetensors"));
        var b = SafeTensorsFile.Open(Path.Combine(resumed, "model.safetensors"));
        foreach (var name in a.Tensors.Keys)
        {
            using var x = a.ReadFloat32(name);
            using var y = b.ReadFloat32(name);
            Assert.True(x.allclose(y, rtol: 1e-4, atol: 1e-5), $"{name} differs after resuming");
        }
    }

    [Fact]
    public void Resume_with_different_settings_is_refused()
    {
        ClipTrainer.Train(Options(_out) with { StopAfterStep = 1 });
        var e = Assert.Throws<InvalidDataException>(() => ClipTrainer.Train(Options(_out) with { Resume = true, LearningRate = 1e-3 }));
        Assert.Contains("different settings", e.Message);
    }

    [Fact]
    public void Initialisation_follows_transformers()
    {
        var config = Tiny() with { Vision = Tiny().Vision with { HiddenSize = 64, NumHiddenLayers = 2 } };
        manual_seed(0);
        using var model = new ClipModel(config);
        ClipInitialiser.Initialise(model);
        var p = model.named_parameters().ToDictionary(np => np.name, np => np.parameter);
        void Std(string n, double expected) => Assert.InRange(p[n].std().item<float>() / expected, 0.9, 1.1);
        Std("vision_model.encoder.layers.0.self_attn.q_proj.weight", Math.Pow(64, -0.5) * Math.Pow(4, -0.5));
        Std("vision_model.encoder.layers.1.self_attn.out_proj.weight", Math.Pow(64, -0.5));
        Std("vision_model.encoder.layers.0.mlp.fc1.weight", Math.Pow(128, -0.5));
        Std("vision_model.encoder.layers.0.mlp.fc2.weight", Math.Pow(64, -0.5) * Math.Pow(4, -0.5));
        Std("text_model.embeddings.token_embedding.weight", 0.02);
        Std("text_model.encoder.layers.0.self_attn.k_proj.weight", Math.Pow(32, -0.5) * Math.Pow(2, -0.5));
        Std("text_projection.weight", Math.Pow(32, -0.5));
        Std("visual_projection.weight", Math.Pow(64, -0.5));
        Assert.Equal(0f, p["vision_model.encoder.layers.0.mlp.fc1.bias"].abs().max().item<float>());
        Assert.Equal(1f, p["vision_model.post_layernorm.weight"].min().item<float>());
        Assert.Equal(2.6592f, p["logit_scale"].item<float>(), 4);
    }

    [Fact]
    public void Learning_rate_warms_up_then_decays_on_a_cosine()
    {
        Assert.Equal(0.25, ClipTrainer.LearningRateAt(0, 100, 4, 1.0), 9);
        Assert.Equal(1.0, ClipTrainer.LearningRateAt(4, 100, 4, 1.0), 9);
        Assert.Equal(0.5, ClipTrainer.LearningRateAt(52, 100, 4, 1.0), 9);
        Assert.True(ClipTrainer.LearningRateAt(99, 100, 4, 1.0) < 0.01);
    }

    [Fact]
    public void Augmentation_keeps_shape_range_and_is_seeded()
    {
        using var x = rand(4, 1, 28, 28);
        var aug = new Augmentation();
        using var a = aug.Apply(x, 28, new Random(1));
        using var b = aug.Apply(x, 28, new Random(1));
        using var c = aug.Apply(x, 28, new Random(2));
        Assert.Equal([4L, 1, 28, 28], a.shape);
        Assert.True(a.equal(b).all().item<bool>());
        Assert.False(a.equal(c).all().item<bool>());
        Assert.InRange(a.min().item<float>(), 0f, 1f);
        using var same = Augmentation.None.Apply(x, 28, new Random(1));
        Assert.True(same.equal(x).all().item<bool>());
    }
}
