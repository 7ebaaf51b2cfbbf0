using System.CommandLine;
using TaptPlatform.Cli.Progress;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using TaptPlatform.Vision.Text;
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
        var b16 = CliOptions.Flag("--vit-b16", "also time a ViT-B/16-sized CLIP with random weights");
        var vitImages = CliOptions.Int("--vit-images", 2, "timed images per setting of the ViT-B sizes", 1, 1000);
        vitImages.Aliases.Add("--vit-b32-images");
        var precisions = CliOptions.Defaulted("--precision", "fp32", "number formats, comma-separated (bf16-scoring: the view-ranking pass in bfloat16; bf16: every pass of the step)", "fp32,bf16-scoring,bf16");
        var rounds = CliOptions.Int("--rounds", 1, "rounds over all settings, interleaved (one row per setting and round)", 1, 100);
        var json = CommonOptions.Json();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("bench", """
            Throughput and peak memory of TAPT per design, view count and batch.
            Times the full per-image defense (views, selection, one AdamW step, prediction) after one warm-up image.
            --vit-b32 and --vit-b16 add CLIPs of those sizes with random weights (the prompts and statistics are random too).
            """)
        {
            model, designs, views, images, batch, labels, b32, b16, vitImages, precisions, rounds, json, device, threads,
        };
        command.SetAction(r =>
        {
            var dev = DeviceOption.Parse(r.GetValue(device));
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var setup = new Setup(r.GetValue(designs)!.Split(',').Select(PromptShape.ParseDesign).ToArray(), Counts(r.GetValue(views)!, "--views"),
                Counts(r.GetValue(batch)!, "--batch"), r.GetValue(images), r.GetValue(labels), r.GetValue(json),
                r.GetValue(precisions)!.Split(',').Select(TaptSettingOverrides.ParsePrecision).ToArray(), r.GetValue(rounds));
            var patches = new[] { (r.GetValue(b32), 32), (r.GetValue(b16), 16) }.Where(p => p.Item1).Select(p => p.Item2).ToArray();
            return Execute(setup, r.GetValue(model), dev, patches, r.GetValue(vitImages));
        });
        return command;
    }

    private sealed record Setup(PromptDesign[] Designs, int[] Views, int[] Batches, int Images, int Labels, bool Json, TaptPrecision[] Precisions, int Rounds);

    private static int[] Counts(string list, string option) =>
        list.Split(',').Select(v => int.TryParse(v, out var n) && n > 0 ? n : throw new CliException($"bad {option} value '{v}'")).ToArray();

    private static int Execute(Setup setup, string? modelOption, Device device, int[] vitPatches, int vitImages)
    {
        var (ckpt, clip) = Session.LoadModel(modelOption, device);
        var rows = new JsonArray();
        Console.Error.WriteLine($"torch threads: {get_num_threads()}, device {device}");
        using (ckpt)
        {
            Measure("default (" + Path.GetFileName(ckpt.Directory) + ")", clip, setup, rows);
            foreach (var patch in vitPatches)
                MeasureRandomVit(patch, ckpt.Tokenizer, device, setup with { Batches = setup.Batches.Where(b => b <= 8).DefaultIfEmpty(1).ToArray(), Images = vitImages }, rows);
        }
        if (setup.Json) Console.WriteLine(rows.ToJsonString());
        return 0;
    }

    /// <summary>A ViT-B CLIP of the patch size with random weights: CLIP-size costs without a checkpoint.</summary>
    private static void MeasureRandomVit(int patch, ClipTokenizer tokenizer, Device device, Setup setup, JsonArray rows)
    {
        // ViT-B sizes; the text ids come from the default model's tokenizer, so its end token must be the pooled one.
        var config = new ClipConfig
        {
            Vision = new ClipVisionConfig { PatchSize = patch },
            Text = new ClipTextConfig { BosTokenId = tokenizer.StartId, EosTokenId = tokenizer.EndId },
        };
        var model = new ClipModel(config);
        using (no_grad())
            foreach (var p in model.parameters()) { p.normal_(0, 0.02); p.requires_grad = false; }
        model.eval();
        using var randomCkpt = ClipCheckpoint.FromModel(model, tokenizer, PreprocessorConfig.Default(224), $"sha256:random-vit-b{patch}");
        using var randomClip = new PromptedClip(randomCkpt, device);
        Measure($"ViT-B/{patch} random weights", randomClip, setup, rows);
    }

    private static void Measure(string modelName, PromptedClip clip, Setup setup, JsonArray rows)
    {
        var (designs, views, batches, images, labels, json, precisions, rounds) = setup;
        var cfg = clip.Model.Config;
        var vocabulary = new LabelVocabulary(Enumerable.Range(0, labels).Select(i => $"class {i}").ToArray());
        var size = cfg.Vision.ImageSize;
        if (!json) Console.WriteLine($"{modelName}: {"design",-6} {"views",5} {"batch",5} {"precision",-12} {"round",5} {"img/s",8} {"ms/img",8} {"peak RSS MiB",12}");
        // The table rows wait for the display to end, so a live display on the same terminal does not overwrite them.
        var lines = new List<string>();
        var total = rounds * precisions.Length * designs.Length * views.Length * batches.Sum(b => (long)Math.Max(images, b));
        var timed = 0L;
        var progress = CliProgress.Start("bench " + modelName, "images");
        try
        {
            var artifacts = designs.ToDictionary(d => d, d => RandomArtifact(clip, d));
            try
            {
                // Rounds outermost: every setting is timed once per round, so a noisy neighbour hits all settings alike.
                for (var round = 1; round <= rounds; round++)
                    foreach (var design in designs)
                        foreach (var v in views)
                            foreach (var b in batches)
                            {
                                List<TaptResult>? first = null;     // the first precision's results, for the others' agreement with them
                                foreach (var precision in precisions)
                                {
                                    var results = new List<TaptResult>();
                                    var row = TimeOne(clip, artifacts[design], new TaptOptions { Views = v, Precision = precision }, b, images, labels, results,
                                        done => progress.Report(timed + done, total, $"{design}, {v} views, batch {b}, {Name(precision)}, round {round}"));
                                    if (first is null) first = results;
                                    else
                                    {
                                        row["same_prediction_as_first"] = results.Zip(first).Average(p => p.First.Prediction == p.Second.Prediction ? 1.0 : 0.0);
                                        row["same_selection_as_first"] = results.Zip(first).Average(p => p.First.SelectsSameViewsAs(p.Second) ? 1.0 : 0.0);
                                    }
                                    timed += (int)row["images"]!;
                                    row["model"] = modelName;
                                    row["design"] = design.ToString();
                                    row["round"] = round;
                                    rows.Add(row);
                                    if (!json)
                                        lines.Add($"{new string(' ', modelName.Length + 1)} {design,-6} {v,5} {b,5} {Name(precision),-12} {round,5} " +
                                            $"{(double)row["images_per_second"]!,8:F2} {(double)row["ms_per_image"]!,8:F1} {(double)row["peak_rss_mib"]!,12:F0}" +
                                            (row["same_prediction_as_first"] is { } same ? $"   same prediction {(double)same:P0}, same views {(double)row["same_selection_as_first"]!:P0} as {Name(precisions[0])}" : ""));
                                }
                            }
            }
            finally
            {
                foreach (var a in artifacts.Values) a.Dispose();
            }
        }
        finally
        {
            progress.Dispose();
        }
        foreach (var line in lines) Console.WriteLine(line);
    }
    private static string Name(TaptPrecision p) => TaptSettingOverrides.PrecisionName(p);

    /// <summary>A prompt artifact of the design with random prompts and statistics (timing needs no trained ones).</summary>
    private static PromptArtifact RandomArtifact(PromptedClip clip, PromptDesign design)
    {
        var cfg = clip.Model.Config;
        var shape = PromptShape.For(design, cfg.Vision.NumHiddenLayers, cfg.Text.NumHiddenLayers);
        var gen = new Generator(1);
        var adv = PromptSet.Initialise(shape, clip.Model, clip.Checkpoint.Tokenizer, gen);
        var tokens = cfg.Vision.NumPositions + shape.TokensPerLayer;
        ReferenceStatistics RandomStats() => new(randn([cfg.Vision.NumHiddenLayers, tokens, cfg.Vision.HiddenSize], generator: gen),
            rand([cfg.Vision.NumHiddenLayers, tokens, cfg.Vision.HiddenSize], generator: gen), 0, "random");
        return new PromptArtifact
        {
            Shape = shape,
            ModelChecksum = clip.Checkpoint.Checksum,
            Adversarial = adv,
            AdversarialStatistics = RandomStats(),
            CleanStatistics = RandomStats(),
        };
    }

    /// <summary>Times the defense on random images after one warm-up batch: images/s, ms per image and peak RSS.</summary>
    private static JsonObject TimeOne(PromptedClip clip, PromptArtifact artifact, TaptOptions options, int batch, int images, int labels, List<TaptResult> results, Action<int> progress)
    {
        var vocabulary = new LabelVocabulary(Enumerable.Range(0, labels).Select(i => $"class {i}").ToArray());
        var size = clip.Model.Config.Vision.ImageSize;
        var gen = new Generator(2);
        var defense = new TaptDefense(clip, artifact, options);
        var inputs = Enumerable.Range(0, Math.Max(images, batch)).Select(i => new TaptInput(rand([3, size, size], generator: gen), i)).ToList();
        try
        {
            defense.Classify(inputs.Take(batch).ToList(), vocabulary);      // warm-up
            GC.Collect();
            PeakMemory.Reset();
            var clock = Stopwatch.StartNew();
            var done = 0;
            for (var s = 0; s < inputs.Count; s += batch)
            {
                var chunk = inputs.Skip(s).Take(batch).ToList();
                results.AddRange(defense.Classify(chunk, vocabulary));
                done += chunk.Count;
                progress(done);
            }
            var seconds = clock.Elapsed.TotalSeconds;
            return new JsonObject
            {
                ["views"] = options.Views,
                ["batch"] = batch,
                ["precision"] = Name(options.Precision),
                ["images"] = done,
                ["images_per_second"] = done / seconds,
                ["ms_per_image"] = 1000 * seconds / done,
                ["peak_rss_mib"] = PeakMemory.MiB(),
            };
        }
        finally
        {
            foreach (var i in inputs) i.Image.Dispose();
            defense.Dispose();
        }
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
