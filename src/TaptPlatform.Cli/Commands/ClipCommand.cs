using System.Text.Json;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Imaging;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt clip</c>: plain CLIP scores of images against label texts (no template added).</summary>
public static class ClipCommand
{
    public const string Usage = "usage: tapt clip [--model DIR] --image FILE [--image FILE ...] --label TEXT [--label TEXT ...] [--json] [--device cpu|cuda]";

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, ["json"]);
        var modelOption = a.Optional("model");
        var images = a.All("image");
        var labels = a.All("label");
        var json = a.Flag("json");
        var device = DeviceOption.Parse(a.Optional("device"));
        a.RejectUnknown();
        if (a.Positional.Count > 0) throw new CliException($"unexpected argument '{a.Positional[0]}' ({Usage})");
        if (images.Count == 0) throw new CliException("give at least one --image");
        if (labels.Count == 0) throw new CliException("give at least one --label");
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
            for (var j = 0; j < labels.Count; j++)
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
