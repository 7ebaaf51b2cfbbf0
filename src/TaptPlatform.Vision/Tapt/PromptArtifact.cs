using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Checkpoints;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tapt;

/// <summary>A prompt artifact that cannot be used: wrong model, wrong version, damaged file.</summary>
public sealed class PromptArtifactException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// One versioned file with everything TAPT needs for a model: the design, the adversarially
/// pre-trained prompts (P_adv), the clean prompts (P_clean), the reference statistics, the test-time
/// settings and the checksum of the model it belongs to. Stored as safetensors; the JSON header lives
/// in the safetensors metadata under "tapt".
/// </summary>
public sealed class PromptArtifact : IDisposable
{
    public const int FormatVersion = 1;

    public required PromptShape Shape { get; init; }
    public required string ModelChecksum { get; init; }
    public required PromptSet Adversarial { get; init; }
    public PromptSet? Clean { get; init; }
    public ReferenceStatistics? AdversarialStatistics { get; init; }
    public ReferenceStatistics? CleanStatistics { get; init; }
    /// <summary>Block-input statistics of PGD images under P_adv (the optional third reference).</summary>
    public ReferenceStatistics? AttackedStatistics { get; init; }
    /// <summary>Which images the "adversarial" alignment reference used: "clean-images" (their code) or "pgd-images".</summary>
    public string AdversarialReferenceSource { get; init; } = "clean-images";
    public TaptOptions Settings { get; init; } = new();

    /// <summary>
    /// The test-time settings to run with: the recorded ones with a caller's overrides (null keeps the recorded
    /// value), validated; <paramref name="design"/>, when given, must be this artifact's. Throws
    /// <see cref="ArgumentException"/> naming what does not fit.
    /// </summary>
    public TaptOptions SettingsWith(string? design, int? views, int? steps, double? learningRate)
    {
        if (design is not null && PromptShape.ParseDesign(design) != Shape.Design)
            throw new ArgumentException($"the prompt configuration expects design {design.ToUpperInvariant()} but the artifact is {Shape.Design}");
        var options = Settings with
        {
            Views = views ?? Settings.Views,
            Steps = steps ?? Settings.Steps,
            LearningRate = learningRate ?? Settings.LearningRate,
        };
        options.Validate();
        return options;
    }
    /// <summary>Free-form provenance (training and calibration commands, data, timings).</summary>
    public JsonObject Provenance { get; init; } = [];

    /// <summary>The reference the alignment loss pulls towards as "adversarial".</summary>
    public ReferenceStatistics? AlignmentAdversarial => AdversarialReferenceSource == "pgd-images" ? AttackedStatistics : AdversarialStatistics;

    public void Save(string path)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in Adversarial.State()) tensors["prompts.adv." + k] = v;
        if (Clean is not null) foreach (var (k, v) in Clean.State()) tensors["prompts.clean." + k] = v;
        void Stats(string name, ReferenceStatistics? s)
        {
            if (s is null) return;
            tensors[$"stats.{name}.mean"] = s.Mean;
            tensors[$"stats.{name}.var"] = s.Variance;
        }
        Stats("adv", AdversarialStatistics);
        Stats("clean", CleanStatistics);
        Stats("attacked", AttackedStatistics);
        var header = new JsonObject
        {
            ["format"] = "tapt-prompts",
            ["format_version"] = FormatVersion,
            ["design"] = Shape.Design.ToString(),
            ["tokens_per_layer"] = Shape.TokensPerLayer,
            ["vision_depth"] = Shape.VisionDepth,
            ["text_depth"] = Shape.TextDepth,
            ["model_checksum"] = ModelChecksum,
            ["adversarial_reference_source"] = AdversarialReferenceSource,
            ["statistics"] = new JsonObject
            {
                ["adv"] = Describe(AdversarialStatistics),
                ["clean"] = Describe(CleanStatistics),
                ["attacked"] = Describe(AttackedStatistics),
            },
            ["settings"] = JsonSerializer.SerializeToNode(Settings, JsonOptions),
            ["provenance"] = Provenance.DeepClone(),
        };
        SafeTensorsFile.Write(path, tensors, new Dictionary<string, string> { ["tapt"] = header.ToJsonString() });
    }

    private static JsonNode? Describe(ReferenceStatistics? s) =>
        s is null ? null : new JsonObject { ["images"] = s.Images, ["description"] = s.Description, ["layers"] = s.Layers };

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>Loads and checks against the model it will run with.</summary>
    public static PromptArtifact Load(string path, ClipCheckpoint checkpoint)
    {
        SafeTensorsFile file;
        try
        {
            file = SafeTensorsFile.Open(path);
        }
        catch (InvalidDataException e)
        {
            throw new PromptArtifactException($"{path}: not a prompt artifact ({e.Message})", e);
        }
        if (!file.Metadata.TryGetValue("tapt", out var headerText))
            throw new PromptArtifactException($"{path}: not a TAPT prompt artifact (no 'tapt' header)");
        try
        {
            var h = JsonNode.Parse(headerText)!.AsObject();
            var version = h["format_version"]!.GetValue<int>();
            if (version != FormatVersion) throw new PromptArtifactException($"{path}: artifact format version {version}; this build reads version {FormatVersion}");
            var checksum = h["model_checksum"]!.GetValue<string>();
            if (checksum != checkpoint.Checksum)
                throw new PromptArtifactException($"{path} belongs to the model with checksum {checksum}, not to {checkpoint.Directory} ({checkpoint.Checksum}); calibrate or train prompts for this model");
            var shape = new PromptShape(PromptShape.ParseDesign(h["design"]!.GetValue<string>()), h["tokens_per_layer"]!.GetValue<int>(),
                h["vision_depth"]!.GetValue<int>(), h["text_depth"]!.GetValue<int>());
            var cfg = checkpoint.Config;
            if (shape.TokensPerLayer < 1 || shape.VisionDepth < 1 || shape.VisionDepth > cfg.Vision.NumHiddenLayers || shape.TextDepth < 0 || shape.TextDepth > cfg.Text.NumHiddenLayers)
                throw new PromptArtifactException($"{path}: prompts of {shape.TokensPerLayer} token(s) at depth {shape.VisionDepth}/{shape.TextDepth} do not fit a model of {cfg.Vision.NumHiddenLayers}/{cfg.Text.NumHiddenLayers} layers");
            Dictionary<string, Tensor> Group(string prefix) => file.Tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(k => k[prefix.Length..], file.ReadFloat32, StringComparer.Ordinal);
            ReferenceStatistics? Stats(string name)
            {
                var meanKey = $"stats.{name}.mean";
                if (!file.Tensors.ContainsKey(meanKey)) return null;
                var d = h["statistics"]?[name];
                var s = new ReferenceStatistics(file.ReadFloat32(meanKey), file.ReadFloat32($"stats.{name}.var"),
                    d?["images"]?.GetValue<long>() ?? 0, d?["description"]?.GetValue<string>() ?? name);
                var tokens = checkpoint.Config.Vision.NumPositions + shape.TokensPerLayer;
                if (s.Layers > cfg.Vision.NumHiddenLayers || s.Mean.shape[1] != tokens || s.Mean.shape[2] != checkpoint.Config.Vision.HiddenSize)
                    throw new PromptArtifactException($"{path}: statistics '{name}' have shape [{string.Join(", ", s.Mean.shape)}], the model needs [layers, {tokens}, {checkpoint.Config.Vision.HiddenSize}]");
                return s;
            }
            var advState = Group("prompts.adv.");
            var cleanState = Group("prompts.clean.");
            return new PromptArtifact
            {
                Shape = shape,
                ModelChecksum = checksum,
                Adversarial = PromptSet.FromState(shape, advState, checkpoint.Model),
                Clean = cleanState.Count > 0 ? PromptSet.FromState(shape, cleanState, checkpoint.Model) : null,
                AdversarialStatistics = Stats("adv"),
                CleanStatistics = Stats("clean"),
                AttackedStatistics = Stats("attacked"),
                AdversarialReferenceSource = h["adversarial_reference_source"]?.GetValue<string>() ?? "clean-images",
                Settings = h["settings"]?.Deserialize<TaptOptions>(JsonOptions) ?? new TaptOptions(),
                Provenance = h["provenance"] as JsonObject is { } p ? (JsonObject)p.DeepClone() : [],
            };
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or KeyNotFoundException
            or ArgumentException or InvalidDataException or IndexOutOfRangeException)
        {
            throw new PromptArtifactException($"{path}: damaged prompt artifact ({e.Message})", e);
        }
    }

    public void Dispose()
    {
        Adversarial.Dispose();
        Clean?.Dispose();
        AdversarialStatistics?.Dispose();
        CleanStatistics?.Dispose();
        AttackedStatistics?.Dispose();
    }
}
