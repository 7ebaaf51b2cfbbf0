using TaptPlatform.Vision.Prompts;
using TaptPlatform.Vision.Tapt;

namespace TaptPlatform.Vision.Tests.Tapt;

public sealed class TextCacheTests
{
    private static readonly TaptOptions Fast = new() { Views = 8, SelectionFraction = 0.25, Steps = 1, LearningRate = 5e-2, AlignmentLayers = 2 };

    private static LabelVocabulary Vocabulary(int i) =>
        new([$"sneaker {i}", $"running shoe {i}", $"leather boot {i}", "dress"], template: i % 2 == 0 ? "a photo of a {0}." : "a {0}, a garment.");

    [Fact]
    public void A_small_text_cache_stays_within_its_bytes_evicts_and_gives_the_uncached_results()
    {
        using var t = new TinyTapt(PromptDesign.VLI);
        using var roomy = new PromptedClip(t.Checkpoint);
        using (var probe = new TaptDefense(roomy, t.Artifact, Fast))
            probe.Classify([new TaptInput(t.Image(1), 1)], Vocabulary(0));
        var perVocabulary = roomy.TextCache.Bytes;               // ids and plain features of one vocabulary
        Assert.True(perVocabulary > 0);

        using var small = new PromptedClip(t.Checkpoint, textCacheBytes: perVocabulary * 3 / 2);
        using var bounded = new TaptDefense(small, t.Artifact, Fast);
        using var reference = new TaptDefense(roomy, t.Artifact, Fast);
        for (var round = 0; round < 2; round++)
            for (var v = 0; v < 5; v++)
            {
                var input = new TaptInput(t.Image(10 + v), v);
                var got = bounded.Classify([input], Vocabulary(v))[0];
                var expected = reference.Classify([input], Vocabulary(v))[0];
                Assert.Equal(expected.BaselineProbabilities, got.BaselineProbabilities);
                Assert.Equal(expected.Probabilities, got.Probabilities);
                Assert.InRange(small.TextCache.Bytes, 1, small.TextCache.MaxBytes);
            }
        Assert.True(small.TextCache.Evictions >= 9, $"{small.TextCache.Evictions} evictions");
        Assert.Equal(10, roomy.TextCache.Count);
    }

    [Fact]
    public void Disposing_a_defense_leaves_the_artifact_usable()
    {
        using var t = new TinyTapt(PromptDesign.V, attacked: true);
        var input = new TaptInput(t.Image(3), 3);
        var first = new TaptDefense(t.Clip, t.Artifact, Fast);
        Assert.True(first.DeviceBytes > 0);
        var expected = first.Classify([input], t.Vocabulary)[0];
        first.Dispose();

        using var second = new TaptDefense(t.Clip, t.Artifact, Fast);
        Assert.Equal(expected.Probabilities, second.Classify([input], t.Vocabulary)[0].Probabilities);
        Assert.Equal(expected.Distances!.ToCleanReference, second.Classify([input], t.Vocabulary)[0].Distances!.ToCleanReference);
    }

    [Fact]
    public void The_vocabulary_key_is_a_hash_of_labels_and_prompt_texts()
    {
        var a = new LabelVocabulary(["cat", "dog"]);
        Assert.Equal(a.Key, new LabelVocabulary(["cat", "dog"], ["a photo of a cat.", "a photo of a dog."]).Key);
        Assert.Equal(a.Key, LabelVocabulary.ContentHash(["cat", "dog"], ["a photo of a cat.", "a photo of a dog."]));
        Assert.Matches("^[0-9a-f]{64}$", a.Key);
        Assert.NotEqual(a.Key, new LabelVocabulary(["dog", "cat"]).Key);
        Assert.NotEqual(a.Key, new LabelVocabulary(["cat", "dog"], template: "{0}").Key);
        // Length prefixes: moving text between fields changes the hash.
        Assert.NotEqual(LabelVocabulary.ContentHash(["ab", "c"], ["x", "y"]), LabelVocabulary.ContentHash(["a", "bc"], ["x", "y"]));
    }
}
