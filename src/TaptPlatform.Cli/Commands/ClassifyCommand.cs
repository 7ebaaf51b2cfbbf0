using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt classify</c>: TAPT-defended classification of images against labels.</summary>
public static class ClassifyCommand
{
    public const string Usage = """
        usage: tapt classify [--model DIR] [--prompts FILE] --image FILE [--image FILE ...] --label TEXT [--label TEXT ...]
                             [--template "a photo of a {0}."] [--views N] [--steps N] [--lr X] [--alignment-weight W] [--view-min-scale S]
                             [--seed 0] [--batch 8] [--json] [--device cpu|cuda]
        Labels are class names; each is read through the template. Every image starts from the pre-trained prompts.
        The test-time settings default to those recorded in the prompt artifact.
        """;

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, ["json"]);
        var device = DeviceOption.Parse(a.Optional("device"));
        Threads.Apply(a);
        var images = a.All("image");
        var labels = a.All("label");
        var template = a.Optional("template") ?? LabelVocabulary.DefaultTemplate;
        var json = a.Flag("json");
        var seed = a.Int("seed", 0);
        var batch = a.Int("batch", 8, 1, 256);
        var promptsPath = a.Optional("prompts");
        if (images.Count == 0) throw new CliException("give at least one --image");
        if (labels.Count < 2) throw new CliException("give at least two --label values");
        foreach (var p in images) if (!File.Exists(p)) throw new CliException($"image not found: {p}");
        LabelVocabulary vocabulary;
        try { vocabulary = new LabelVocabulary(labels, template: template); }
        catch (ArgumentException e) { throw new CliException(e.Message); }

        var (ckpt, clip) = Session.LoadModel(a, device);
        using var _ = ckpt;
        using var artifact = Session.LoadArtifact(promptsPath, ckpt);
        var options = TaptSettingOverrides.Apply(a, artifact.Settings, "");
        a.RejectUnknown();
        var pre = new ImagePreprocessor(ckpt.Preprocessor.ImageOptions);
        var pixels = images.Select(p =>
        {
            try { return pre.LoadFile(p); }
            catch (ImageRejectedException e) { throw new CliException($"{p}: {e.Message}"); }
        }).ToList();
        var defense = new TaptDefense(clip, artifact, options);
        var results = new List<TaptResult>();
        for (var s = 0; s < pixels.Count; s += batch)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var chunk = pixels.Skip(s).Take(batch).ToList();
            var x = pre.ToTensor(chunk);
            var inputs = Enumerable.Range(0, chunk.Count).Select(i => new TaptInput(x[i], seed)).ToList();
            results.AddRange(defense.Classify(inputs, vocabulary));
        }

        if (json)
        {
            var arr = new JsonArray();
            for (var i = 0; i < results.Count; i++) arr.Add(ResultJson.ToJson(images[i], results[i], vocabulary));
            Console.WriteLine(new JsonObject
            {
                ["model"] = ckpt.Directory,
                ["design"] = artifact.Shape.Design.ToString(),
                ["views"] = options.Views,
                ["steps"] = options.Steps,
                ["seed"] = seed,
                ["labels"] = new JsonArray(labels.Select(l => (JsonNode)l).ToArray()),
                ["results"] = arr,
            }.ToJsonString());
            return 0;
        }
        for (var i = 0; i < results.Count; i++)
        {
            var r = results[i];
            Console.WriteLine($"{images[i]}");
            Console.WriteLine($"  TAPT  {vocabulary.Labels[r.Prediction],-20} {r.Probabilities[r.Prediction],7:P1}");
            Console.WriteLine($"  APT   {vocabulary.Labels[r.AptPrediction],-20} {r.AptProbabilities[r.AptPrediction],7:P1}");
            Console.WriteLine($"  CLIP  {vocabulary.Labels[r.BaselinePrediction],-20} {r.BaselineProbabilities[r.BaselinePrediction],7:P1}");
            foreach (var st in r.Steps)
                Console.WriteLine($"  step {st.Step}: entropy {st.EntropyLoss:F4}  align adv {st.AlignmentAdversarial:F4} clean {st.AlignmentClean:F4}  total {st.TotalLoss:F4}");
            if (r.Distances is { } d)
                Console.WriteLine($"  statistics distance: adversarial ref {d.ToAdversarialReference:F4}, clean ref {d.ToCleanReference:F4}{(d.ToAttackedImages is double t ? $", attacked images {t:F4}" : "")}");
            Console.WriteLine($"  {r.Seconds * 1000:F0} ms");
        }
        return 0;
    }
}

public static class ResultJson
{
    public static JsonObject ToJson(string image, TaptResult r, LabelVocabulary vocabulary) => new()
    {
        ["image"] = image,
        ["prediction"] = vocabulary.Labels[r.Prediction],
        ["prediction_index"] = r.Prediction,
        ["probabilities"] = Floats(r.Probabilities),
        ["apt_prediction"] = vocabulary.Labels[r.AptPrediction],
        ["apt_probabilities"] = Floats(r.AptProbabilities),
        ["clip_prediction"] = vocabulary.Labels[r.BaselinePrediction],
        ["clip_probabilities"] = Floats(r.BaselineProbabilities),
        ["steps"] = new JsonArray(r.Steps.Select(s => (JsonNode)new JsonObject
        {
            ["step"] = s.Step,
            ["entropy"] = s.EntropyLoss,
            ["align_adv"] = s.AlignmentAdversarial,
            ["align_clean"] = s.AlignmentClean,
            ["loss"] = s.TotalLoss,
            ["selected_views"] = new JsonArray(s.SelectedViews.Select(v => (JsonNode)v).ToArray()),
        }).ToArray()),
        ["distances"] = r.Distances is null ? null : JsonSerializer.SerializeToNode(r.Distances),
        ["seconds"] = r.Seconds,
    };

    private static JsonArray Floats(float[] v) => new(v.Select(x => (JsonNode)x).ToArray());
}
