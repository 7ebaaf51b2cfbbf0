using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Imaging;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Cli.Commands;

/// <summary>
/// <c>tapt samples</c>: the sample images shipped with the repository: Fashion-MNIST test images as PNG, and images
/// attacked at ε against plain CLIP on which CLIP is wrong and TAPT right, so a newcomer sees the defense at work.
/// </summary>
public static class SamplesCommand
{
    public const string Usage = """
        usage: tapt samples --out DIR [--model DIR] [--prompts FILE] [--count 30] [--attacked 3] [--eps 4/255] [--steps 100] [--seed 0]
                            [--tapt-seeds 8]
        Writes --count Fashion-MNIST test images (a seeded draw) as DIR/NNNN-LABEL.png at their 28x28 size, then attacks
        further test images with PGD (cross-entropy, --steps steps of 1/255, random start) against plain CLIP at the
        model's input size and keeps --attacked of them on which CLIP is wrong and TAPT is right under every one of
        --tapt-seeds view seeds, read back from their PNG: DIR/attacked-NNNN-LABEL.png. The clean image is rounded to
        8 bits before the attack, so the saved attacked image is within eps of it exactly.
        """;

    public static int Run(string[] argv)
    {
        if (argv.Contains("--help")) { Console.WriteLine(Usage); return 0; }
        var a = new CliArgs(argv, []);
        var output = a.Required("out");
        var count = a.Int("count", 30, 0, 10_000);
        var attacked = a.Int("attacked", 3, 0, 100);
        var eps = a.Double("eps", 4.0 / 255, 0, 1);
        var steps = a.Int("steps", 100, 1, 10_000);
        var seed = a.Int("seed", 0);
        var taptSeeds = a.Int("tapt-seeds", 8, 1, 64);
        Threads.Apply(a);
        var (ckpt, clip) = Session.LoadModel(a, DeviceOption.Parse(a.Optional("device")));
        using var _ = ckpt;
        using var artifact = Session.LoadArtifact(a.Optional("prompts"), ckpt);
        a.RejectUnknown();
        if (File.Exists(output)) throw new CliException($"--out {output} is a file, not a directory");
        Directory.CreateDirectory(output);

        var test = FashionMnist.Load("test");
        var vocabulary = Session.Vocabulary(new GreyImageDataset(test));
        var order = DatasetSampling.Sample(test.Count, test.Count, seed);
        foreach (var index in order.Take(count))
            File.WriteAllBytes(Path.Combine(output, $"{index:D4}-{Slug(test.ClassNames[test.Labels[index]])}.png"), GreyPng(test, index));
        Console.WriteLine($"wrote {Math.Min(count, order.Length)} test images to {output}");
        if (attacked == 0) return 0;

        var defense = new TaptDefense(clip, artifact, artifact.Settings);
        var pre = new ImagePreprocessor(ckpt.Preprocessor.ImageOptions);
        var attack = new AttackSettings(AttackKind.Pgd, eps, steps).Create();
        var generator = new Generator((ulong)(seed + 1));
        var data = new GreyImageDataset(test);
        var kept = 0;
        var tried = 0;
        foreach (var chunk in order.Skip(count).Chunk(16))
        {
            if (kept >= attacked) break;
            using var scope = NewDisposeScope();
            // On the 8-bit grid first, so that rounding the attacked image keeps it within eps of this one.
            var x = (data.Images(chunk, clip.ImageSize).to(clip.Device) * 255).round() / 255;
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
                Console.WriteLine($"  {name}: CLIP wrong, TAPT right under {taptSeeds} view seeds");
            }
        }
        Console.WriteLine($"wrote {kept} attacked images (eps {eps * 255:G4}/255, PGD-{steps} against CLIP) out of {tried} tried");
        return kept == attacked ? 0 : 1;

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

    private static byte[] GreyPng(LabelledImages d, int index)
    {
        var plane = d.Height * d.Width;
        var chw = new float[3 * plane];
        for (var i = 0; i < plane; i++)
            chw[i] = chw[plane + i] = chw[2 * plane + i] = d.Pixels[index * plane + i] / 255f;
        return ImageEncoding.EncodePng(chw, d.Height, d.Width);
    }

    /// <summary>"T-shirt/top" → "t-shirt-top", "Ankle boot" → "ankle-boot".</summary>
    public static string Slug(string label) =>
        string.Join('-', label.ToLowerInvariant().Split([' ', '/'], StringSplitOptions.RemoveEmptyEntries));
}
