using TaptPlatform.Contracts;
using TaptPlatform.Grains.Tuning;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Grains.Tests;

public sealed class VocabularyReferenceTests
{
    private static VocabularyVersion Version(string template = VocabularyDefinition.DefaultTemplate, int version = 3) => new("tenant-a", "shoes", version,
        [new LabelEntry("sneaker"), new LabelEntry("boot", "a sturdy leather boot."), new LabelEntry("sandal", "  ")], template, DateTimeOffset.UnixEpoch);

    [Fact]
    public void The_contracts_default_template_is_the_ml_cores()
    {
        // The ML core cannot reference the contracts (no Orleans there), so one constant is checked against the other.
        Assert.Equal(LabelVocabulary.DefaultTemplate, VocabularyDefinition.DefaultTemplate);
    }

    [Fact]
    public void A_label_reads_its_own_prompt_text_or_else_the_template()
    {
        Assert.Equal(new[] { "a photo of a sneaker.", "a sturdy leather boot.", "a photo of a sandal." }, PromptTexts.Of(Version()));
        Assert.Equal(new[] { "sneaker!", "a sturdy leather boot.", "sandal!" }, PromptTexts.Of(Version("{0}!")));
        // The ML core applies the same rule when it fills a vocabulary's blanks.
        var v = Version();
        Assert.Equal(PromptTexts.Of(v), new LabelVocabulary(v.Labels.Select(l => l.Label).ToArray(), v.Labels.Select(l => l.PromptText ?? "").ToArray()).PromptTexts);
    }

    [Fact]
    public void A_reference_hashes_labels_and_prompt_texts_and_resolves_only_to_that_content()
    {
        var v = Version();
        var reference = VocabularyReferences.Of(v);
        Assert.Equal(("tenant-a", "shoes", 3), (reference.TenantId, reference.Name, reference.Version));
        var resolved = VocabularyReferences.Resolve(reference, v);
        Assert.Equal(reference.Sha256, resolved.Key);
        Assert.Equal(PromptTexts.Of(v), resolved.PromptTexts);
        Assert.NotEqual(reference.Sha256, VocabularyReferences.Of(Version("{0}!")).Sha256);

        var changed = Assert.Throws<TuningFailedException>(() => VocabularyReferences.Resolve(reference, Version("{0}!")));
        Assert.False(changed.Transient);
        Assert.Throws<TuningFailedException>(() => VocabularyReferences.Resolve(reference, v with { TenantId = "tenant-b" }));
        Assert.Throws<TuningFailedException>(() => VocabularyReferences.Resolve(reference, Version(version: 4)));
    }

    [Fact]
    public async Task The_vocabulary_cache_fetches_a_reference_once_for_concurrent_callers_and_reports_a_missing_one_as_permanent()
    {
        using var cache = new VocabularyCache(1 << 20);
        var v = Version();
        var fetches = 0;
        var gate = new TaskCompletionSource<VocabularyVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<VocabularyVersion> Fetch(VocabularyReference _)
        {
            Interlocked.Increment(ref fetches);
            return gate.Task;
        }
        var callers = Enumerable.Range(0, 8).Select(_ => cache.GetAsync(VocabularyReferences.Of(v), Fetch)).ToList();
        gate.SetResult(v);
        var got = await Task.WhenAll(callers);
        Assert.Equal(1, fetches);
        Assert.All(got, g => Assert.Same(got[0], g));
        Assert.Same(got[0], await cache.GetAsync(VocabularyReferences.Of(v), Fetch));
        Assert.Equal(1, fetches);

        var missing = VocabularyReferences.Of(v with { Name = "gone" });
        var e = await Assert.ThrowsAsync<TuningFailedException>(() => cache.GetAsync(missing, _ => throw new TaptNotFoundException("vocabulary 'gone' not found")));
        Assert.False(e.Transient);
    }
}
