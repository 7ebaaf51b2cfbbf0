using System.Security.Cryptography;
using TaptPlatform.Vision.Checkpoints;
using TorchSharp;
using TaptPlatform.Vision.Text;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

/// <summary>A loaded Hugging Face CLIP directory: model, tokenizer, preprocessing and the weights' checksum.</summary>
public sealed class ClipCheckpoint : IDisposable
{
    // Buffers older transformers versions saved; they are not parameters, so they are checked and skipped.
    private static readonly HashSet<string> KnownBuffers = new(StringComparer.Ordinal)
    {
        "text_model.embeddings.position_ids",
        "vision_model.embeddings.position_ids",
    };

    private ClipCheckpoint(string directory, ClipModel model, ClipTokenizer tokenizer, PreprocessorConfig preprocessor, string checksum)
    {
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
        Preprocessor = preprocessor;
        Checksum = checksum;
    }

    public string Directory { get; }
    public ClipModel Model { get; }
    public ClipConfig Config => Model.Config;
    public ClipTokenizer Tokenizer { get; }
    public PreprocessorConfig Preprocessor { get; }

    /// <summary>"sha256:…" of model.safetensors; prompt artifacts pin it.</summary>
    public string Checksum { get; }

    /// <summary>Wraps an in-memory model (random-weight benchmarks, freshly trained models).</summary>
    public static ClipCheckpoint FromModel(ClipModel model, ClipTokenizer tokenizer, PreprocessorConfig preprocessor, string checksum, string directory = "(in memory)") =>
        new(directory, model, tokenizer, preprocessor, checksum);

    public static ClipCheckpoint Load(string directory, Device? device = null)
    {
        if (!System.IO.Directory.Exists(directory)) throw new ClipCheckpointException($"model directory not found: {directory}");
        var config = ClipConfig.Load(Path.Combine(directory, "config.json"));
        var weightsPath = Path.Combine(directory, "model.safetensors");
        if (!File.Exists(weightsPath)) throw new ClipCheckpointException($"model.safetensors not found in {directory}");
        ClipTokenizer tokenizer;
        try
        {
            tokenizer = ClipTokenizer.FromFiles(Path.Combine(directory, "vocab.json"), Path.Combine(directory, "merges.txt"), config.Text.MaxPositionEmbeddings);
        }
        catch (Exception e) when (e is FileNotFoundException or FormatException)
        {
            throw new ClipCheckpointException(e.Message, e);
        }
        if (tokenizer.VocabularySize > config.Text.VocabSize)
            throw new ClipCheckpointException($"vocab.json has {tokenizer.VocabularySize} tokens but the model's vocab_size is {config.Text.VocabSize}");
        var preprocessor = PreprocessorConfig.Load(Path.Combine(directory, "preprocessor_config.json"), config.Vision.ImageSize);

        var model = new ClipModel(config);
        try
        {
            LoadWeights(model, weightsPath);
            model.SetNormalisation(preprocessor.ImageMean, preprocessor.ImageStd);
            model.eval();
            foreach (var p in model.parameters()) p.requires_grad = false;
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return new ClipCheckpoint(Path.GetFullPath(directory), model, tokenizer, preprocessor, Sha256(weightsPath));
    }

    /// <summary>Copies every parameter from the file; refuses missing, extra and mis-shaped tensors by name.</summary>
    public static void LoadWeights(ClipModel model, string weightsPath)
    {
        SafeTensorsFile file;
        try
        {
            file = SafeTensorsFile.Open(weightsPath);
        }
        catch (InvalidDataException e)
        {
            throw new ClipCheckpointException(e.Message, e);
        }
        var expected = model.state_dict();
        var missing = expected.Keys.Where(k => !file.Tensors.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new ClipCheckpointException($"{weightsPath}: missing tensor{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" (and {missing.Count - 5} more)" : "")}");
        var extra = file.Tensors.Keys.Where(k => !expected.ContainsKey(k) && !KnownBuffers.Contains(k)).ToList();
        if (extra.Count > 0)
            throw new ClipCheckpointException($"{weightsPath}: unexpected tensor{(extra.Count > 1 ? "s" : "")} {string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? $" (and {extra.Count - 5} more)" : "")}");
        foreach (var (name, target) in expected)
        {
            var info = file.Tensors[name];
            if (!info.Shape.SequenceEqual(target.shape))
                throw new ClipCheckpointException($"{weightsPath}: tensor {name} has shape [{string.Join(", ", info.Shape)}], the config needs [{string.Join(", ", target.shape)}]");
        }
        using var _ = no_grad();
        foreach (var (name, target) in expected)
        {
            Tensor source;
            try
            {
                source = file.ReadFloat32(name);
            }
            catch (InvalidDataException e)
            {
                throw new ClipCheckpointException($"{weightsPath}: {e.Message}", e);
            }
            using (source) target.copy_(source);
        }
    }

    public static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    public void Dispose() => Model.Dispose();
}
