using System.CommandLine;
using TaptPlatform.Cli.Progress;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary><c>tapt bench</c>: TAPT images per second and peak memory per design, view count and batch.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var designs = CliOptions.Defaulted("--designs", "V,VLI,VLJ", "prompt designs, comma-separated", "V,VLI,VLJ");
        var views = CliOptions.Defaulted("--views", "16,64", "view counts, comma-separated", "N,...");
        var images = CliOptions.Int("--images", 8, "timed images per setting", 1, 10_000);
        var batch = CliOptions.Defaulted("--batch", "1,8", "batch sizes, comma-separated", "N,...");
        var labels = CliOptions.Int("--labels", 10, "labels in the vocabulary", 2, 100_000);
        var b32 = CliOptions.Flag("--vit-b32", "also time a ViT-B/32-sized CLIP with random weights");
        var b32Images = CliOptions.Int("--vit-b32-images", 2, "timed images per setting of the ViT-B/32", 1, 1000);
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("bench", """
            Throughput and peak memory of TAPT per design, view count and batch.
            Times the full per-image defense (views, selection, one AdamW step, prediction) after one warm-up image.
            --vit-b32 adds a ViT-B/32-sized CLIP with random weights (the prompts and statistics are random too).
            """)
        {
            model, designs, views, images, batch, labels, b32, b32Images, json, device, threads,
        };
        command.SetAction(r =>
        {
            var dev = DeviceOption.Parse(r.GetValue(device));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var setup = new Setup(r.GetValue(designs)!.Split(',').Select(PromptShape.ParseDesign).ToArray(), Counts(r.GetValue(views)!, "--views"),
                Counts(r.GetValue(batch)!, "--batch"), r.GetValue(images), r.GetValue(labels), r.GetValue(json));
            return Execute(setup, r.GetValue(model), dev, r.GetValue(b32), r.GetValue(b32Images));
        });
        return command;
    }

    private sealed record Setup(PromptDesign[] Designs, int[] Views, int[] Batches, int Images, int Labels, bool Json);

    private static int[] Counts(string list, string option) =>
        list.Split(',').Select(v => int.TryParse(v, out var n) && n > 0 ? n : throw new CliException($"bad {option} value '{v}'")).ToArray();

    private static int Execute(Setup setup, string? modelOption, Device device, bool b32, int b32Images)
    {
        var (designs, views, batches, images, labels, json) = setup;
        var (ckpt, clip) = Session.LoadModel(modelOption, device);
        var rows = new JsonArray();
        Console.Error.WriteLine($"torch threads: {get_num_threads()}, device {device}");
        using (ckpt)
            Measure("default (" + Path.GetFileName(ckpt.Directory) + ")", clip, designs, views, batches, images, labels, rows, json);
        if (b32)
        {
            // ViT-B/32 sizes; the text ids come from the default model's tokenizer, so its end token must be the pooled one.
            var config = new ClipConfig
            {
                Vision = new ClipVisionConfig { PatchSize = 32 },
                Text = new ClipTextConfig { BosTokenId = ckpt.Tokenizer.StartId, EosTokenId = ckpt.Tokenizer.EndId },
            };
            var model = new ClipModel(config);
            using (no_grad())
                foreach (var p in model.parameters()) { p.normal_(0, 0.02); p.requires_grad = false; }
            model.eval();
            using var randomCkpt = ClipCheckpoint.FromModel(model, ckpt.Tokenizer, PreprocessorConfig.Default(224), "sha256:random-vit-b32");
            Measure("ViT-B/32 random weights", new PromptedClip(randomCkpt, device), designs, views, batches.Where(b => b <= 2).DefaultIfEmpty(1).ToArray(), b32Images, labels, rows, json);
        }
        if (json) Console.WriteLine(rows.ToJsonString());
        return 0;
    }

    private static void Measure(string modelName, PromptedClip clip, PromptDesign[] designs, int[] views, int[] batches, int images, int labels, JsonArray rows, bool json)
    {
        var cfg = clip.Model.Config;
        var vocabulary = new LabelVocabulary(Enumerable.Range(0, labels).Select(i => $"class {i}").ToArray());
        var size = cfg.Vision.ImageSize;
        if (!json) Console.WriteLine($"{modelName}: {"design",-6} {"views",5} {"batch",5} {"img/s",8} {"ms/img",8} {"peak RSS MiB",12}");
        // The table rows wait for the display to end, so a live display on the same terminal does not overwrite them.
        var lines = new List<string>();
        var total = designs.Length * views.Length * batches.Sum(b => (long)Math.Max(images, b));
        var timed = 0L;
        var progress = CliProgress.Start("bench " + modelName, "images");
        try
        {
            foreach (var design in designs)
            {
                var shape = PromptShape.For(design, cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers);
                var gen = new Generator(1);
                var adv = PromptSet.Initialise(shape, clip.Model, clip.Checkpoint.Tokenizer, gen);
                var tokens = cfg.Vision.NumPositions + shape.TokensPerLayer;
                ReferenceStatistics RandomStats() => new(randn([cfg.Vision.NumHiddenLayers, tokens, cfg.Vision.HiddenSize], generator: gen),
                    rand([cfg.Vision.NumHiddenLayers, tokens, cfg.Vision.HiddenSize], generator: gen), 0, "random");
                using var artifact = new PromptArtifact
                {
                    Shape = shape,
                    ModelChecksum = clip.Checkpoint.Checksum,
                    Adversarial = adv,
                    AdversarialStatistics = RandomStats(),
                    CleanStatistics = RandomStats(),
                };
                foreach (var v in views)
                    foreach (var b in batches)
                    {
                        var defense = new TaptDefense(clip, artifact, new TaptOptions { Views = v });
                        var inputs = Enumerable.Range(0, Math.Max(images, b)).Select(i => new TaptInput(rand([3, size, size], generator: gen), i)).ToList();
                        defense.Classify(inputs.Take(b).ToList(), vocabulary);      // warm-up
                        GC.Collect();
                        PeakMemory.Reset();
                        var clock = Stopwatch.StartNew();
                        var done = 0;
                        for (var s = 0; s < inputs.Count; s += b)
                        {
                            var chunk = inputs.Skip(s).Take(b).ToList();
                            defense.Classify(chunk, vocabulary);
                            done += chunk.Count;
                            progress.Report(timed + done, total, $"{design}, {v} views, batch {b}");
                        }
                        timed += done;
                        var seconds = clock.Elapsed.TotalSeconds;
                        var peak = PeakMemory.MiB();
                        foreach (var i in inputs) i.Image.Dispose();
                        rows.Add(new JsonObject
                        {
                            ["model"] = modelName,
                            ["design"] = design.ToString(),
                            ["views"] = v,
                            ["batch"] = b,
                            ["images"] = done,
                            ["images_per_second"] = done / seconds,
                            ["ms_per_image"] = 1000 * seconds / done,
                            ["peak_rss_mib"] = peak,
                        });
                        if (!json) lines.Add($"{new string(' ', modelName.Length + 1)} {design,-6} {v,5} {b,5} {done / seconds,8:F2} {1000 * seconds / done,8:F1} {peak,12:F0}");
                    }
            }
        }
        finally
        {
            progress.Dispose();
        }
        foreach (var line in lines) Console.WriteLine(line);
    }
}

/// <summary>Peak resident memory of this process (Linux: VmHWM, reset through /proc/self/clear_refs).</summary>
public static class PeakMemory
{
    public static void Reset()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public static double MiB()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            if (line is not null) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
    }
}
