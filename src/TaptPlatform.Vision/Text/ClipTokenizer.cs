using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TaptPlatform.Vision.Text;

/// <summary>
/// CLIP's tokenizer: NFC, HTML unescape (twice), whitespace collapse and lower-casing; CLIP's
/// pre-tokenisation pattern; byte-level BPE with a "&lt;/w&gt;" end-of-word marker; start and end
/// tokens around the ids; truncation to the context length keeping the end token.
/// </summary>
public sealed partial class ClipTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";
    public const string EndOfWord = "</w>";

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    public ClipTokenizer(IReadOnlyDictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, int contextLength = 77)
    {
        _vocab = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        _ranks = new Dictionary<(string, string), int>();
        for (var i = 0; i < merges.Count; i++) _ranks.TryAdd(merges[i], i);
        if (!_vocab.TryGetValue(StartToken, out var bos)) throw new FormatException($"vocabulary lacks {StartToken}");
        if (!_vocab.TryGetValue(EndToken, out var eos)) throw new FormatException($"vocabulary lacks {EndToken}");
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength));
        StartId = bos;
        EndId = eos;
        ContextLength = contextLength;
        IdToToken = _vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
    }

    public int StartId { get; }
    public int EndId { get; }
    public int ContextLength { get; }
    public int VocabularySize => _vocab.Count;
    public IReadOnlyDictionary<int, string> IdToToken { get; }

    /// <summary>Loads <c>vocab.json</c> and <c>merges.txt</c> as transformers' CLIPTokenizer does.</summary>
    public static ClipTokenizer FromFiles(string vocabPath, string mergesPath, int contextLength = 77)
    {
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"vocab.json not found: {vocabPath}", vocabPath);
        if (!File.Exists(mergesPath)) throw new FileNotFoundException($"merges.txt not found: {mergesPath}", mergesPath);
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath))
                ?? throw new FormatException("vocab.json is empty");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{vocabPath}: not a token → id JSON object ({e.Message})", e);
        }
        var merges = ParseMerges(File.ReadAllLines(mergesPath));
        return new ClipTokenizer(vocab, merges, contextLength);
    }

    /// <summary>transformers skips the "#version" line and keeps at most 49152 − 256 − 2 merges.</summary>
    public static List<(string, string)> ParseMerges(IEnumerable<string> lines)
    {
        var merges = new List<(string, string)>();
        var first = true;
        foreach (var raw in lines)
        {
            if (first) { first = false; if (raw.StartsWith('#')) continue; }
            if (raw.Length == 0) continue;
            var parts = raw.Split(' ');
            if (parts.Length != 2) throw new FormatException($"merges.txt: line '{raw}' is not a pair");
            merges.Add((parts[0], parts[1]));
            if (merges.Count == 49152 - 256 - 2) break;
        }
        return merges;
    }

    /// <summary>Ids from start to end token, truncated to the context length (end token kept).</summary>
    public int[] Encode(string text)
    {
        var ids = new List<int>(16) { StartId };
        foreach (var token in Tokenize(text))
        {
            if (!_vocab.TryGetValue(token, out var id))
                throw new FormatException($"token '{token}' is not in the vocabulary");
            ids.Add(id);
            if (ids.Count == ContextLength - 1) break;
        }
        ids.Add(EndId);
        return [.. ids];
    }

    /// <summary>BPE tokens of the text (no start/end tokens).</summary>
    public IEnumerable<string> Tokenize(string text)
    {
        foreach (Match m in PreTokenizer().Matches(Clean(text)))
        {
            var piece = m.Value;
            if (piece == StartToken || piece == EndToken) { yield return piece; continue; }
            foreach (var t in Bpe(ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(piece)))) yield return t;
        }
    }

    public string Decode(IEnumerable<int> ids)
    {
        var sb = new StringBuilder();
        foreach (var id in ids)
        {
            if (id == StartId || id == EndId) continue;
            sb.Append(IdToToken.TryGetValue(id, out var t) ? t : "");
        }
        var chars = sb.ToString().Replace(EndOfWord, " ");
        var bytes = new List<byte>();
        var reverse = Enumerable.Range(0, 256).ToDictionary(b => ByteLevelAlphabet.ByteToChar[b], b => (byte)b);
        foreach (var c in chars)
        {
            if (c == ' ') bytes.Add((byte)' ');
            else if (reverse.TryGetValue(c, out var b)) bytes.Add(b);
        }
        return Encoding.UTF8.GetString([.. bytes]).Trim();
    }

    /// <summary>The text cleanup CLIP applies before pre-tokenising.</summary>
    public static string Clean(string text)
    {
        var t = text.Normalize(NormalizationForm.FormC);
        t = WebUtility.HtmlDecode(WebUtility.HtmlDecode(t)).Trim();
        t = Whitespace().Replace(t, " ").Trim();
        return t.ToLowerInvariant();
    }

    private string[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var word = new List<string>(token.Length);
        for (var i = 0; i < token.Length; i++) word.Add(token[i].ToString());
        word[^1] += EndOfWord;
        while (word.Count > 1)
        {
            var bestRank = int.MaxValue;
            (string, string) best = default;
            for (var i = 0; i < word.Count - 1; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank) { bestRank = r; best = (word[i], word[i + 1]); }
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(word.Count);
            for (var i = 0; i < word.Count;)
            {
                if (i < word.Count - 1 && word[i] == best.Item1 && word[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i += 2;
                }
                else merged.Add(word[i++]);
            }
            word = merged;
        }
        var result = word.ToArray();
        if (_cache.Count < 100_000) _cache[token] = result;
        return result;
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    internal static partial Regex PreTokenizer();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
