using System.Globalization;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Text;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Training;

/// <summary>Zero-shot accuracy and per-class accuracy.</summary>
public sealed record ZeroShotResult(double Accuracy, int Correct, int Count, IReadOnlyList<string> Prompts, IReadOnlyList<double> PerClassAccuracy);

/// <summary>
/// Zero-shot classification: one prompt per class (the template filled with the lower-cased class name),
/// each image assigned to the class whose prompt embedding has the highest cosine similarity.
/// </summary>
public static class ZeroShot
{
    /// <param name="progress">Called after every batch with (images done, images in all).</param>
    public static ZeroShotResult Evaluate(ClipCheckpoint checkpoint, IImageDataset data, string template = LabelVocabulary.DefaultTemplate, int batch = 500,
        Action<int, int>? progress = null) =>
        Evaluate(checkpoint.Model, checkpoint.Tokenizer, data, template, batch, progress);

    public static IReadOnlyList<string> Prompts(IReadOnlyList<string> classNames, string template)
    {
        if (!template.Contains("{0}", StringComparison.Ordinal)) throw new ArgumentException($"template '{template}' has no {{0}} placeholder", nameof(template));
        return classNames.Select(n => string.Format(CultureInfo.InvariantCulture, template, n.ToLowerInvariant())).ToArray();
    }

    public static ZeroShotResult Evaluate(ClipModel model, ClipTokenizer tokenizer, IImageDataset data, string template = LabelVocabulary.DefaultTemplate, int batch = 500,
        Action<int, int>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        var prompts = Prompts(data.ClassNames, template);
        var predictions = Predict(model, tokenizer, data, prompts, batch, progress);
        var classes = data.ClassNames.Count;
        var hits = new int[classes];
        var totals = new int[classes];
        for (var i = 0; i < data.Count; i++)
        {
            var label = data.Label(i);
            totals[label]++;
            if (predictions[i] == label) hits[label]++;
        }
        var correct = hits.Sum();
        return new ZeroShotResult(data.Count == 0 ? 0 : (double)correct / data.Count, correct, data.Count, prompts,
            hits.Select((h, c) => totals[c] == 0 ? double.NaN : (double)h / totals[c]).ToArray());
    }

    /// <summary>The index of the best-matching prompt for every image.</summary>
    public static int[] Predict(ClipModel model, ClipTokenizer tokenizer, IImageDataset data, IReadOnlyList<string> prompts, int batch = 500,
        Action<int, int>? progress = null)
    {
        var device = model.parameters().First().device;
        var size = model.Config.Vision.ImageSize;
        var predictions = new int[data.Count];
        using var _ = no_grad();
        using var outer = NewDisposeScope();
        var ids = TokenBatch.Pad(prompts.Select(tokenizer.Encode).ToList(), model.Config.Text.PadTokenId).to(device);
        var text = nn.functional.normalize(model.EncodeText(ids), dim: -1);
        for (var start = 0; start < data.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            var n = Math.Min(batch, data.Count - start);
            var x = data.Images(Enumerable.Range(start, n).ToArray(), size).to(device);
            var img = nn.functional.normalize(model.EncodeImage(x), dim: -1);
            var best = img.matmul(text.t()).argmax(-1).cpu().data<long>().ToArray();
            for (var i = 0; i < n; i++) predictions[start + i] = (int)best[i];
            progress?.Invoke(start + n, data.Count);
        }
        return predictions;
    }
}
