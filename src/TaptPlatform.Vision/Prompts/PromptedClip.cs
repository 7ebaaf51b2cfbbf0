using System.Collections.Concurrent;
using TaptPlatform.Vision.Clip;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Prompts;

/// <summary>
/// CLIP as a classifier over a label vocabulary, with or without prompts. Caches what does not
/// change: tokenised prompt texts per vocabulary and, for prompt-free text sides (plain CLIP and the
/// V design), the text features.
/// </summary>
public sealed class PromptedClip
{
    private readonly ConcurrentDictionary<string, TokenizedVocabulary> _ids = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Tensor> _plainText = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public PromptedClip(ClipCheckpoint checkpoint, Device? device = null)
    {
        Checkpoint = checkpoint;
        Device = device ?? CPU;
    }

    public ClipCheckpoint Checkpoint { get; }
    public ClipModel Model => Checkpoint.Model;
    public Device Device { get; }
    public int ImageSize => Model.Config.Vision.ImageSize;

    /// <summary>Token ids [C, L] of the vocabulary's prompt texts (cached, never disposed by callers).</summary>
    public Tensor Ids(LabelVocabulary vocabulary, int contextTokens = 0)
    {
        var tokens = _ids.GetOrAdd(vocabulary.Key, _ =>
        {
            var rows = vocabulary.PromptTexts.Select(Checkpoint.Tokenizer.Encode).ToList();
            var t = TokenBatch.Pad(rows, Model.Config.Text.PadTokenId).to(Device);
            t.DetachFromDisposeScope();
            using var eos = Model.TextModel.EosIndex(t);
            return new TokenizedVocabulary(t, (int)eos.min().item<long>() - 1);
        });
        // Learned prompts replace the first n content tokens; each text needs at least one more before its end token.
        if (contextTokens > 0 && tokens.ShortestText <= contextTokens)
            throw new ArgumentException($"a prompt text has only {tokens.ShortestText} tokens; learned prompts replace the first {contextTokens}, so each needs more");
        return tokens.Ids;
    }

    /// <summary>Padded ids and the content-token count of the shortest text (found once per vocabulary).</summary>
    private sealed record TokenizedVocabulary(Tensor Ids, int ShortestText);

    /// <summary>Normalised text features [C, P] without learned text prompts (cached per vocabulary).</summary>
    public Tensor PlainTextFeatures(LabelVocabulary vocabulary)
    {
        if (_plainText.TryGetValue(vocabulary.Key, out var cached)) return cached;
        lock (_gate)
        {
            if (_plainText.TryGetValue(vocabulary.Key, out cached)) return cached;
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var features = nn.functional.normalize(Model.EncodeText(Ids(vocabulary)), dim: -1);
            features.DetachFromDisposeScope();
            _plainText[vocabulary.Key] = features;
            return features;
        }
    }

    /// <summary>
    /// Normalised text features: [C, P] for a single prompt set or none, [K, C, P] for a stacked set.
    /// Uses the cache when the prompts have no text side.
    /// </summary>
    public Tensor TextFeatures(LabelVocabulary vocabulary, PromptSet? prompts)
    {
        var textPrompts = prompts?.TextTokens();
        if (textPrompts is null)
        {
            var plain = PlainTextFeatures(vocabulary);
            return prompts is { Groups: > 0 } ? plain.unsqueeze(0).expand(prompts.Groups, -1, -1) : plain.alias();
        }
        var ids = Ids(vocabulary, prompts!.Shape.TokensPerLayer);
        if (prompts.Groups == 0) return nn.functional.normalize(Model.EncodeText(ids, textPrompts), dim: -1);
        var k = prompts.Groups;
        // Image g's labels are rows g·C .. g·C + C − 1, so its prompt group covers them.
        using var tiled = ids.repeat(k, 1);
        using var f = Model.EncodeText(tiled, textPrompts);
        using var n = nn.functional.normalize(f, dim: -1);
        return n.view(k, vocabulary.Count, -1);
    }

    /// <summary>
    /// Normalised image features of a batch. With a stacked set, the batch is K consecutive groups of
    /// equal size, group g using prompt slice g.
    /// </summary>
    public Tensor ImageFeatures(Tensor pixels01, PromptSet? prompts, IList<Tensor>? blockInputs = null, int captureLayers = int.MaxValue)
    {
        using var f = Model.EncodeImage(pixels01, prompts?.VisionTokens(), blockInputs, captureLayers);
        return nn.functional.normalize(f, dim: -1);
    }

    /// <summary>Scaled cosine logits: image [B, P] × text [C, P] → [B, C]; or grouped [K, V, P] × [K, C, P] → [K, V, C].</summary>
    public Tensor Logits(Tensor imageFeatures, Tensor textFeatures)
    {
        using var scale = Model.LogitScale.exp();
        using var cos = textFeatures.dim() == 2 ? imageFeatures.matmul(textFeatures.t()) : imageFeatures.bmm(textFeatures.transpose(1, 2));
        return cos * scale;
    }

    /// <summary>Logits [B, C] of a batch of images under one (unstacked) prompt set or plain CLIP.</summary>
    public Tensor Classify(Tensor pixels01, LabelVocabulary vocabulary, PromptSet? prompts)
    {
        if (prompts is { Groups: > 0 }) throw new ArgumentException("use a single prompt set");
        using var img = ImageFeatures(pixels01, prompts);
        using var txt = TextFeatures(vocabulary, prompts);
        return Logits(img, txt);
    }
}
