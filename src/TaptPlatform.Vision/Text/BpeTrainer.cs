using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TaptPlatform.Vision.Text;

/// <summary>A byte-level BPE vocabulary in CLIP's layout (what <c>vocab.json</c> and <c>merges.txt</c> hold).</summary>
public sealed record BpeVocabulary(IReadOnlyDictionary<string, int> Vocab, IReadOnlyList<(string Left, string Right)> Merges)
{
    public int Size => Vocab.Count;

    /// <summary>Writes <c>vocab.json</c> and <c>merges.txt</c> ("#version: 0.2" first) into the directory.</summary>
    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        var ordered = Vocab.OrderBy(kv => kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value);
        var json = JsonSerializer.Serialize(ordered, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        File.WriteAllText(Path.Combine(directory, "vocab.json"), json, new UTF8Encoding(false));
        var sb = new StringBuilder("#version: 0.2\n");
        foreach (var (l, r) in Merges) sb.Append(l).Append(' ').Append(r).Append('\n');
        File.WriteAllText(Path.Combine(directory, "merges.txt"), sb.ToString(), new UTF8Encoding(false));
    }

    public ClipTokenizer ToTokenizer(int contextLength = 77) => new(Vocab, Merges, contextLength);
}

/// <summary>
/// Learns a byte-level BPE vocabulary in CLIP's format from a text corpus. Text is cleaned and
/// pre-tokenised exactly as <see cref="ClipTokenizer"/> does; each word is its UTF-8 bytes as
/// GPT-2 byte characters with "&lt;/w&gt;" on the last symbol. The most frequent adjacent pair
/// (ties: the ordinal-smallest pair) is merged until none occurs <c>minFrequency</c> times or
/// <c>maxMerges</c> is reached. The vocabulary is CLIP's: the 256 byte characters, the same with
/// "&lt;/w&gt;", one token per merge, then the start and end tokens.
/// </summary>
public static class BpeTrainer
{
    public static BpeVocabulary Train(IEnumerable<string> corpus, int maxMerges = 4096, int minFrequency = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMerges);
        ArgumentOutOfRangeException.ThrowIfLessThan(minFrequency, 1);
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in corpus)
        {
            foreach (System.Text.RegularExpressions.Match m in ClipTokenizer.PreTokenizer().Matches(ClipTokenizer.Clean(text)))
            {
                if (m.Value is ClipTokenizer.StartToken or ClipTokenizer.EndToken) continue;
                var w = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(m.Value));
                wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
            }
        }
        // Each distinct word as a list of symbols, with its count; sorted so the run is deterministic.
        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: Symbols(kv.Key), kv.Value)).ToList();

        var merges = new List<(string, string)>();
        while (merges.Count < maxMerges)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (var i = 0; i < symbols.Count - 1; i++)
                {
                    var p = (symbols[i], symbols[i + 1]);
                    pairs[p] = pairs.GetValueOrDefault(p) + count;
                }
            if (pairs.Count == 0) break;
            var best = default((string, string));
            var bestCount = 0;
            foreach (var (p, c) in pairs)
                if (c > bestCount || (c == bestCount && ComparePair(p, best) < 0)) { best = p; bestCount = c; }
            if (bestCount < minFrequency) break;
            merges.Add(best);
            var joined = best.Item1 + best.Item2;
            foreach (var (symbols, _) in words)
            {
                for (var i = 0; i < symbols.Count - 1; i++)
                {
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = joined;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }
        return new BpeVocabulary(BuildVocab(merges), merges);
    }

    /// <summary>CLIP's vocabulary order for the given merges.</summary>
    public static Dictionary<string, int> BuildVocab(IReadOnlyList<(string Left, string Right)> merges)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        void Add(string t) => vocab.TryAdd(t, vocab.Count);
        var bytes = ByteOrder();
        foreach (var b in bytes) Add(ByteLevelAlphabet.ByteToChar[b].ToString());
        foreach (var b in bytes) Add(ByteLevelAlphabet.ByteToChar[b] + ClipTokenizer.EndOfWord);
        foreach (var (l, r) in merges) Add(l + r);
        Add(ClipTokenizer.StartToken);
        Add(ClipTokenizer.EndToken);
        return vocab;
    }

    /// <summary>bytes_to_unicode's order: the printable bytes ascending, then the others ascending.</summary>
    private static List<int> ByteOrder()
    {
        var printable = Enumerable.Range(0, 256).Where(b => ByteLevelAlphabet.ByteToChar[b] == (char)b).ToList();
        return [.. printable, .. Enumerable.Range(0, 256).Where(b => ByteLevelAlphabet.ByteToChar[b] != (char)b)];
    }

    private static List<string> Symbols(string word)
    {
        var s = new List<string>(word.Length);
        foreach (var c in word) s.Add(c.ToString());
        s[^1] += ClipTokenizer.EndOfWord;
        return s;
    }

    private static int ComparePair((string, string) a, (string, string) b)
    {
        if (b.Item1 is null) return -1;
        var c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }
}
