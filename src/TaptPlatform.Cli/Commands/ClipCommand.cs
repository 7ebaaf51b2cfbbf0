using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt clip</c>: plain CLIP scores of images against label texts (no template added).</summary>
public static class ClipCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var images = CliOptions.Many("--image", "an image file (repeatable)", "FILE");
        var labels = CliOptions.Many("--label", "a label text, used as it is (repeatable)");
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var command = new Command("clip", "Scores images against label texts with plain CLIP (no template added): the probabilities and logits per image.")
        {
            model, images, labels, json, device,
        };
        command.SetAction(r => Execute(r.GetValue(model), r.GetValue(images) ?? [], r.GetValue(labels) ?? [], r.GetValue(json), r.GetValue(device)));
        return command;
    }

    private static int Execute(string? modelOption, string[] images, string[] labels, bool json, string? deviceOption)
    {
        var device = DeviceOption.Parse(deviceOption);
        if (images.Length == 0) throw new CliException("give at least one --image");
        if (labels.Length == 0) throw new CliException("give at least one --label");
        if (labels.Any(string.IsNullOrWhiteSpace)) throw new CliException("labels must not be empty");
        foreach (var path in images)
            if (!File.Exists(path)) throw new CliException($"image not found: {path}");
        var modelDir = ModelLocator.Resolve(modelOption);

        using var ckpt = ClipCheckpoint.Load(modelDir, device);
        var pre = new ImagePreprocessor(ckpt.Preprocessor.ImageOptions);
        var pixels = images.Select(p =>
        {
            try { return pre.LoadFile(p); }
            catch (ImageRejectedException e) { throw new CliException($"{p}: {e.Message}"); }
        }).ToList();
        var ids = labels.Select(ckpt.Tokenizer.Encode).ToList();

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = pre.ToTensor(pixels).to(device);
        var idTensor = TokenBatch.Pad(ids, ckpt.Config.Text.PadTokenId).to(device);
        var img = ckpt.Model.EncodeImage(x);
        var txt = ckpt.Model.EncodeText(idTensor);
        var logits = ckpt.Model.Logits(img, txt).cpu();
        var imageEmbeds = nn.functional.normalize(img, dim: -1).cpu();
        var textEmbeds = nn.functional.normalize(txt, dim: -1).cpu();

        if (json)
        {
            var o = new JsonObject
            {
                ["model"] = ckpt.Directory,
                ["images"] = new JsonArray(images.Select(p => (JsonNode)p).ToArray()),
                ["labels"] = new JsonArray(labels.Select(l => (JsonNode)l).ToArray()),
                ["input_ids"] = new JsonArray(ids.Select(r => (JsonNode)new JsonArray(r.Select(i => (JsonNode)i).ToArray())).ToArray()),
                ["image_embeds"] = Matrix(imageEmbeds),
                ["text_embeds"] = Matrix(textEmbeds),
                ["logits_per_image"] = Matrix(logits),
            };
            Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        }

        var probs = logits.softmax(-1);
        var width = Math.Min(40, labels.Max(l => l.Length));
        foreach (var (path, i) in images.Select((p, i) => (p, i)))
        {
            Console.WriteLine(path);
            var row = probs[i].data<float>().ToArray();
            var best = Array.IndexOf(row, row.Max());
            for (var j = 0; j < labels.Length; j++)
            {
                var label = labels[j].Length > width ? labels[j][..(width - 1)] + "…" : labels[j];
                Console.WriteLine($"  {(j == best ? "*" : " ")} {label.PadRight(width)}  {row[j],7:P2}  logit {logits[i, j].item<float>(),8:F3}  {new string('█', (int)Math.Round(row[j] * 30))}");
            }
        }
        return 0;
    }

    private static JsonArray Matrix(Tensor t)
    {
        var rows = new JsonArray();
        for (var i = 0; i < t.shape[0]; i++)
            rows.Add(new JsonArray(t[i].data<float>().ToArray().Select(v => (JsonNode)v).ToArray()));
        return rows;
    }
}
