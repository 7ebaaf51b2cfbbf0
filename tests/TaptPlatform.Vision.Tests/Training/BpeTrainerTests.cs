using System.Text.Json;
using TaptPlatform.Vision.Text;
using TaptPlatform.Vision.Training;

namespace TaptPlatform.Vision.Tests.Training;

public sealed class BpeTrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tapt-bpe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Trained_vocabulary_round_trips_through_the_clip_tokenizer()
    {
        var corpus = CaptionSet.Fashion.Corpus().ToList();
        var bpe = BpeTrainer.Train(corpus);
        bpe.Write(_dir);
        Assert.Equal("#version: 0.2", File.ReadLines(Path.Combine(_dir, "merges.txt")).First());
        var tok = ClipTokenizer.FromFiles(Path.Combine(_dir, "vocab.json"), Path.Combine(_dir, "merges.txt"));
        Assert.Equal(bpe.Size, tok.VocabularySize);
        Assert.Equal(512 + bpe.Merges.Count + 2, bpe.Size); // no merge repeats a token here

        // Frequent words are single whole-word tokens.
        foreach (var word in new[] { "photo", "picture", "sneaker", "trouser", "pullover", "ankle", "boot", "shirt", "black", "white" })
        {
            var tokens = tok.Tokenize($"a photo of a {word}.").ToList();
            Assert.Contains(word + "</w>", tokens);
        }
        // Every training caption: whole-word tokens for its words, and decoding gives the cleaned caption back.
        foreach (var caption in corpus)
        {
            var ids = tok.Encode(caption);
            Assert.Equal(tok.StartId, ids[0]);
            Assert.Equal(tok.EndId, ids[^1]);
            Assert.Equal(ClipTokenizer.Clean(caption).Replace(" ", ""), tok.Decode(ids).Replace(" ", ""));
            Assert.All(tok.Tokenize(caption), t => Assert.EndsWith("</w>", t));
        }
        Assert.Equal(["a</w>", "photo</w>", "of</w>", "a</w>", "t</w>", "-</w>", "shirt</w>", "/</w>", "top</w>", ".</w>"], tok.Tokenize("a photo of a t-shirt/top.").ToArray());
    }

    [Fact]
    public void Vocabulary_layout_is_clips()
    {
        var bpe = BpeTrainer.Train(["low lower lowest", "low low"]);
        var v = bpe.Vocab;
        Assert.Equal(0, v["!"]);
        Assert.Equal(93, v["~"]);
        Assert.Equal(188, v["Ā"]);  // byte 0, the first non-printable byte
        Assert.Equal(256, v["!</w>"]);
        Assert.Equal(512, v[bpe.Merges[0].Left + bpe.Merges[0].Right]);
        Assert.Equal(v.Count - 2, v[ClipTokenizer.StartToken]);
        Assert.Equal(v.Count - 1, v[ClipTokenizer.EndToken]);
        // "low" occurs 3 times, "lo" 5 times: l+o, then lo+w</w>.
        Assert.Equal(("l", "o"), bpe.Merges[0]);
        Assert.Equal(("lo", "w</w>"), bpe.Merges[1]);
        bpe.Write(_dir);
        var json = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(_dir, "vocab.json")))!;
        Assert.Equal(v.Count, json.Count);
        Assert.Equal(bpe.Merges.Count + 1, File.ReadAllLines(Path.Combine(_dir, "merges.txt")).Length);
    }

    [Fact]
    public void Ties_take_the_ordinal_smallest_pair_and_min_frequency_stops()
    {
        var bpe = BpeTrainer.Train(["ab cd", "ab cd"], minFrequency: 2);
        Assert.Equal(("a", "b</w>"), bpe.Merges[0]);
        Assert.Equal(("c", "d</w>"), bpe.Merges[1]);
        Assert.Equal(2, bpe.Merges.Count);
        Assert.Empty(BpeTrainer.Train(["ab cd"], minFrequency: 2).Merges);
        Assert.Single(BpeTrainer.Train(["ab cd", "ab cd"], maxMerges: 1).Merges);
    }

    [Fact]
    public void Words_outside_the_corpus_still_encode_from_bytes()
    {
        var tok = BpeTrainer.Train(CaptionSet.Fashion.Corpus()).ToTokenizer();
        var ids = tok.Encode("a photo of a zebra 🦓");
        Assert.Equal("a photo of a zebra 🦓", tok.Decode(ids));
    }
}
