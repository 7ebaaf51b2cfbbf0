using TaptPlatform.Vision.Caching;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Prompts;

/// <summary>
/// CLIP as a classifier over a label vocabulary, with or without prompts. Caches what does not
/// change, per vocabulary (<see cref="LabelVocabulary.Key"/>) in one bounded LRU cache: the tokenised
/// prompt texts and, for prompt-free text sides (plain CLIP and the V design), the text features.
/// </summary>
public sealed class PromptedClip : IDisposable
{
    public const long DefaultTextCacheBytes = 64L << 20;

    private readonly BoundedCache<(TextKind Kind, string Vocabulary), CachedText> _text;
    private readonly Lock _gate = new();

    public PromptedClip(ClipCheckpoint checkpoint, Device? device = null, long textCacheBytes = DefaultTextCacheBytes)
    {
        Checkpoint = checkpoint;
        Device = device ?? CPU;
        _text = new BoundedCache<(TextKind, string), CachedText>("prompted-clip.text", textCacheBytes, t => t.Bytes);
    }

    /// <summary>The token-id and text-feature cache (device memory of the tensors it holds).</summary>
    public ICacheStatistics TextCache => _text;

    public ClipCheckpoint Checkpoint { get; }
    public ClipModel Model => Checkpoint.Model;
    public Device Device { get; }
    public int ImageSize => Model.Config.Vision.ImageSize;

    /// <summary>Token ids [C, L] of the vocabulary's prompt texts: a new handle on the cached ids, owned by the caller.</summary>
    public Tensor Ids(LabelVocabulary vocabulary, int contextTokens = 0)
    {
        using var lease = _text.Rent((TextKind.Ids, vocabulary.Key), _ => Tokenize(vocabulary));
        var tokens = lease.Value;
        // Learned prompts replace the first n content tokens; each text needs at least one more before its end token.
        if (contextTokens > 0 && tokens.ShortestText <= contextTokens)
            throw new ArgumentException($"a prompt text has only {tokens.ShortestText} tokens; learned prompts replace the first {contextTokens}, so each needs more");
        // The alias shares the storage, so it stays valid after the cache evicts and disposes its own handle.
        return tokens.Tensor.alias();
    }

    private CachedText Tokenize(LabelVocabulary vocabulary)
    {
        var rows = vocabulary.PromptTexts.Select(Checkpoint.Tokenizer.Encode).ToList();
        using var padded = TokenBatch.Pad(rows, Model.Config.Text.PadTokenId);
        var t = padded.to(Device, copy: true);
        t.DetachFromDisposeScope();
        using var eos = Model.TextModel.EosIndex(t);
        using var shortest = eos.min();
        return new CachedText(t, (int)shortest.item<long>() - 1);
    }

    /// <summary>Normalised text features [C, P] without learned text prompts (cached per vocabulary; the caller owns the returned handle).</summary>
    public Tensor PlainTextFeatures(LabelVocabulary vocabulary)
    {
        var key = (TextKind.PlainFeatures, vocabulary.Key);
        if (_text.TryRent(key, out var cached))
            using (cached) return cached.Value.Tensor.alias();
        // One thread encodes a vocabulary; the others wait for its features instead of encoding them again.
        lock (_gate)
        {
            using var lease = _text.Rent(key, _ =>
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                using var ids = Ids(vocabulary);
                var features = nn.functional.normalize(Model.EncodeText(ids), dim: -1);
                features.DetachFromDisposeScope();
                return new CachedText(features, 0);
            });
            return lease.Value.Tensor.alias();
        }
    }

    private enum TextKind
    {
        Ids,
        PlainFeatures,
    }

    /// <summary>A cached tensor: padded ids with the content-token count of the shortest text, or plain text features.</summary>
    private sealed class CachedText(Tensor tensor, int shortestText) : IDisposable
    {
        public Tensor Tensor { get; } = tensor;
        public int ShortestText { get; } = shortestText;
        public long Bytes { get; } = tensor.NumberOfElements * tensor.ElementSize;
        public void Dispose() => Tensor.Dispose();
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
            if (prompts is not { Groups: > 0 }) return plain;
            using (plain) return plain.unsqueeze(0).expand(prompts.Groups, -1, -1);
        }
        using var ids = Ids(vocabulary, prompts!.Shape.TokensPerLayer);
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

    /// <summary>
    /// <see cref="ImageFeatures"/> in <paramref name="precision"/>: anything but fp32 runs a bf16 copy of the weights
    /// (made on first use and kept: one per model) on the prompt tokens cast from their fp32 values, so gradients reach
    /// the prompts in fp32; the features and the captured block inputs come back in fp32.
    /// </summary>
    public Tensor ImageFeatures(Tensor pixels01, PromptSet prompts, TaptPrecision precision, IList<Tensor>? blockInputs = null, int captureLayers = int.MaxValue)
    {
        if (precision == TaptPrecision.Fp32) return ImageFeatures(pixels01, prompts, blockInputs, captureLayers);
        var model = LowPrecisionModel();
        using var scope = NewDisposeScope();
        var tokens = prompts.VisionTokens();
        var cast = new PromptTokens(tokens.Layers.Select(t => t?.to(ScalarType.BFloat16)).ToList());
        var pixels = pixels01.to(ScalarType.BFloat16);
        var lowBlocks = blockInputs is null ? null : new List<Tensor>();
        var features = model.EncodeImage(pixels, cast, lowBlocks, captureLayers).to(ScalarType.Float32);
        foreach (var block in lowBlocks ?? [])
            blockInputs!.Add(block.to(ScalarType.Float32).MoveToOuterDisposeScope());
        return nn.functional.normalize(features, dim: -1).MoveToOuterDisposeScope();
    }

    private ClipModel? _lowPrecision;

    private ClipModel LowPrecisionModel()
    {
        lock (_gate) return _lowPrecision ??= Model.CopyAs(ScalarType.BFloat16, Device);
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

    /// <summary>Frees the cached tensors (handles callers still hold stay valid).</summary>
    public void Dispose()
    {
        _text.Dispose();
        _lowPrecision?.Dispose();
    }
}
