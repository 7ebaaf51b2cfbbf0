using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt classify</c>: TAPT-defended classification of images against labels.</summary>
public static class ClassifyCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var prompts = CommonOptions.Prompts();
        var images = CliOptions.Many("--image", "an image file (repeatable)", "FILE");
        var labels = CliOptions.Many("--label", "a class name, read through the template (repeatable, at least two)");
        var template = CliOptions.Defaulted("--template", LabelVocabulary.DefaultTemplate, "the label template; {0} is the class name");
        var overrides = new TaptSettingOverrides("");
        var seed = CliOptions.Int("--seed", 0, "seed of the random views");
        var batch = CliOptions.Int("--batch", 8, "images per TAPT batch", 1, 256);
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("classify", """
            Classifies images with the TAPT defense, against plain CLIP and APT.
            Labels are class names; each is read through the template. Every image starts from the pre-trained prompts.
            The test-time settings default to those recorded in the prompt artifact.
            """)
        {
            model, prompts, images, labels, template, seed, batch, json, device, threads,
        };
        overrides.AddTo(command);
        command.SetAction(r =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var input = new Input(r.GetValue(images) ?? [], r.GetValue(labels) ?? [], r.GetValue(template)!, r.GetValue(seed), r.GetValue(batch), r.GetValue(json));
            return Execute(r.GetValue(model), r.GetValue(prompts), r.GetValue(device), input, (recorded, dev) => overrides.Apply(r, recorded, dev));
        });
        return command;
    }

    private sealed record Input(string[] Images, string[] Labels, string Template, int Seed, int Batch, bool Json);

    private static int Execute(string? modelOption, string? promptsPath, string? deviceOption, Input input, Func<TaptOptions, TorchSharp.torch.Device, TaptOptions> settings)
    {
        var device = DeviceOption.Parse(deviceOption);
        var (images, labels, template, seed, batch, json) = input;
        if (images.Length == 0) throw new CliException("give at least one --image");
        if (labels.Length < 2) throw new CliException("give at least two --label values");
        foreach (var p in images) if (!File.Exists(p)) throw new CliException($"image not found: {p}");
        LabelVocabulary vocabulary;
        try { vocabulary = new LabelVocabulary(labels, template: template); }
        catch (ArgumentException e) { throw new CliException(e.Message); }

        var (ckpt, clip) = Session.LoadModel(modelOption, device);
        using var _ = ckpt;
        using var artifact = Session.LoadArtifact(promptsPath, ckpt);
        var options = settings(artifact.Settings, device);
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
                ["precision"] = TaptPrecisions.Name(options.Precision),
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
