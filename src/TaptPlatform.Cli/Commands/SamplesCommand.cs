using System.CommandLine;
using TaptPlatform.Cli.Progress;
using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using TorchSharp;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt samples</c>: the sample images shipped with the repository: Fashion-MNIST test images as PNG, and images
/// attacked at ε against plain CLIP on which CLIP is wrong and TAPT right, so a newcomer sees the defense at work.
/// </summary>
public static class SamplesCommand
{
    private sealed record Setup(string Output, int Count, int Attacked, double Eps, int Steps, int Seed, int TaptSeeds);

    public static Command Create()
    {
        var output = CliOptions.Required("--out", "the folder to write", "DIR");
        var model = CommonOptions.Model();
        var prompts = CommonOptions.Prompts();
        var count = CliOptions.Int("--count", 30, "clean test images to write", 0, 10_000);
        var attacked = CliOptions.Int("--attacked", 3, "attacked images to keep", 0, 100);
        var eps = CliOptions.Number("--eps", 4.0 / 255, "attack budget (L-inf), e.g. 4/255", 0, 1);
        var steps = CliOptions.Int("--steps", 100, "PGD steps of 1/255", 1, 10_000);
        var seed = CliOptions.Int("--seed", 0, "seed of the draw and the attack");
        var taptSeeds = CliOptions.Int("--tapt-seeds", 8, "view seeds under every one of which TAPT must be right", 1, 64);
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var command = new Command("samples", """
            Writes sample images: Fashion-MNIST test images and attacked ones the defense recovers.
            Writes --count Fashion-MNIST test images (a seeded draw) as DIR/NNNN-LABEL.png at their 28x28 size, then attacks
            further test images with PGD (cross-entropy, --steps steps of 1/255, random start) against plain CLIP at the
            model's input size and keeps --attacked of them on which CLIP is wrong and TAPT is right under every one of
            --tapt-seeds view seeds, read back from their PNG: DIR/attacked-NNNN-LABEL.png. The clean image is rounded to
            8 bits before the attack, so the saved attacked image is within eps of it exactly.
            """)
        {
            output, model, prompts, count, attacked, eps, steps, seed, taptSeeds, device, threads,
        };
        command.SetAction(r =>
        {
            CommonOptions.ApplyThreads(r.GetValue(threads));
            var (ckpt, clip) = Session.LoadModel(r.GetValue(model), DeviceOption.Parse(r.GetValue(device)));
            using var _ = ckpt;
            using var artifact = Session.LoadArtifact(r.GetValue(prompts), ckpt);
            return Execute(new Setup(r.GetValue(output)!, r.GetValue(count), r.GetValue(attacked), r.GetValue(eps), r.GetValue(steps), r.GetValue(seed),
                r.GetValue(taptSeeds)), ckpt, clip, artifact);
        });
        return command;
    }

    private static int Execute(Setup s, ClipCheckpoint ckpt, PromptedClip clip, PromptArtifact artifact)
    {
        var (output, count, attacked, eps, steps, seed, taptSeeds) = s;
        if (File.Exists(output)) throw new CliException($"--out {output} is a file, not a directory");
        Directory.CreateDirectory(output);

        var test = FashionMnist.Load("test");
        var vocabulary = Session.Vocabulary(new GreyImageDataset(test));
        var order = DatasetSampling.Sample(test.Count, test.Count, seed);
        foreach (var index in order.Take(count))
            File.WriteAllBytes(Path.Combine(output, $"{index:D4}-{Slug(test.ClassNames[test.Labels[index]])}.png"), test.EncodePng(index));
        Console.WriteLine($"wrote {Math.Min(count, order.Length)} test images to {output}");
        if (attacked == 0) return 0;

        var defense = new TaptDefense(clip, artifact, artifact.Settings);
        var pre = new ImagePreprocessor(ckpt.Preprocessor.ImageOptions);
        var attack = new AttackSettings(AttackKind.Pgd, eps, steps).Create();
        var generator = new Generator((ulong)(seed + 1));
        var data = new GreyImageDataset(test);
        var kept = 0;
        var tried = 0;
        // The kept images' lines wait for the display to end, so a live display on the same terminal does not overwrite them.
        var lines = new List<string>();
        using (var progress = CliProgress.Start("samples", "attacked images"))
            foreach (var chunk in order.Skip(count).Chunk(16))
            {
                if (kept >= attacked) break;
                Attack(chunk);
                progress.Report(kept, attacked, $"{tried} tried");
            }
        foreach (var line in lines) Console.WriteLine(line);
        Console.WriteLine($"wrote {kept} attacked images (eps {eps * 255:G4}/255, PGD-{steps} against CLIP) out of {tried} tried");
        return kept == attacked ? 0 : 1;

        void Attack(int[] chunk)
        {
            using var scope = NewDisposeScope();
            // On the 8-bit grid first, so that rounding the attacked image keeps it within eps of this one.
            using var levels = 255.ToScalar();
            var x = (data.Images(chunk, clip.ImageSize).to(clip.Device) * levels).round() / levels;
            var y = tensor(chunk.Select(i => (long)test.Labels[i]).ToArray()).to(clip.Device);
            var adversarial = attack.Perturb(img => clip.Classify(img, vocabulary, null), x, y, generator).cpu();
            for (var i = 0; i < chunk.Length && kept < attacked; i++)
            {
                tried++;
                var png = ImageEncoding.EncodePng(adversarial[i].data<float>().ToArray(), clip.ImageSize, clip.ImageSize);
                var label = test.Labels[chunk[i]];
                if (!ShowsTheDefense(png, label)) continue;
                var name = $"attacked-{chunk[i]:D4}-{Slug(test.ClassNames[label])}.png";
                File.WriteAllBytes(Path.Combine(output, name), png);
                kept++;
                lines.Add($"  {name}: CLIP wrong, TAPT right under {taptSeeds} view seeds");
            }
        }

        bool ShowsTheDefense(byte[] png, int label)
        {
            using var scope = NewDisposeScope();
            var x = pre.ToTensor([pre.Load(png)]).to(clip.Device);
            using (no_grad())
                if (clip.Classify(x, vocabulary, null).argmax(-1).item<long>() == label) return false;
            var inputs = Enumerable.Range(0, taptSeeds).Select(s => new TaptInput(x[0], s)).ToList();
            return defense.Classify(inputs, vocabulary).All(r => r.Prediction == label);
        }
    }

    /// <summary>"T-shirt/top" → "t-shirt-top", "Ankle boot" → "ankle-boot".</summary>
    public static string Slug(string label) =>
        string.Join('-', label.ToLowerInvariant().Split([' ', '/'], StringSplitOptions.RemoveEmptyEntries));
}
