using System.Text.Json;
using TaptPlatform.Vision.Text;

namespace TaptPlatform.Vision.Tests.Text;

public class ClipTokenizerTests
{
    private sealed record Case(string text, int[] ids, string? note);

    private static ClipTokenizer Tokenizer()
    {
        var dir = GoldenFiles.Case("tiny-quickgelu-legacy-eos");
        return ClipTokenizer.FromFiles(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
    }

    public static IEnumerable<object[]> Cases()
    {
        var path = Path.Combine(GoldenFiles.Root, "tokenizer", "cases.json");
        var cases = JsonSerializer.Deserialize<Case[]>(File.ReadAllText(path))!;
        return cases.Select((c, i) => new object[] { i, c.note ?? c.text });
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ids_equal_the_reference_tokenizer(int index, string note)
    {
        var path = Path.Combine(GoldenFiles.Root, "tokenizer", "cases.json");
        var c = JsonSerializer.Deserialize<Case[]>(File.ReadAllText(path))![index];
        Assert.True(c.ids.SequenceEqual(Tokenizer().Encode(c.text)), $"case '{note}'");
    }

    [Fact]
    public void Long_text_is_truncated_to_the_context_length_keeping_the_end_token()
    {
        var tok = Tokenizer();
        var ids = tok.Encode(string.Join(" ", Enumerable.Repeat("a photo of a sneaker", 40)));
        Assert.Equal(77, ids.Length);
        Assert.Equal(tok.StartId, ids[0]);
        Assert.Equal(tok.EndId, ids[^1]);
    }

    [Fact]
    public void Decode_inverts_encode_for_known_words()
    {
        var tok = Tokenizer();
        Assert.Equal("a photo of a sneaker", tok.Decode(tok.Encode("A  Photo of a SNEAKER")));
    }

    [Fact]
    public void Merges_header_line_is_skipped()
    {
        var merges = ClipTokenizer.ParseMerges(["#version: 0.2", "a b", "ab c</w>"]);
        Assert.Equal([("a", "b"), ("ab", "c</w>")], merges);
    }
}
