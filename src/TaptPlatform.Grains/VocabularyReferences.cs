using TaptPlatform.Contracts;
using TaptPlatform.Vision.Prompts;

namespace TaptPlatform.Grains;

/// <summary>Vocabulary versions by reference: what job grains send and what model grains resolve.</summary>
public static class VocabularyReferences
{
    /// <summary>The reference of a vocabulary version, hashed over its labels and prompt texts.</summary>
    public static VocabularyReference Of(VocabularyVersion vocabulary) =>
        new(vocabulary.TenantId, vocabulary.Name, vocabulary.Version, LabelVocabulary.ContentHash(LabelsOf(vocabulary), PromptTexts.Of(vocabulary)));

    /// <summary>
    /// The vocabulary the reference names, from the version obtained for it; a version that is not the one referenced
    /// (other tenant, name, number or content) fails permanently.
    /// </summary>
    public static LabelVocabulary Resolve(VocabularyReference reference, VocabularyVersion vocabulary)
    {
        if (vocabulary.TenantId != reference.TenantId || vocabulary.Name != reference.Name || vocabulary.Version != reference.Version)
            throw new TuningFailedException($"vocabulary '{reference.Name}' v{reference.Version} resolved to '{vocabulary.Name}' v{vocabulary.Version}");
        LabelVocabulary resolved;
        try
        {
            resolved = new LabelVocabulary(LabelsOf(vocabulary), PromptTexts.Of(vocabulary));
        }
        catch (ArgumentException e)
        {
            throw new TuningFailedException($"vocabulary '{reference.Name}' v{reference.Version} cannot be used: {e.Message}");
        }
        return resolved.Key == reference.Sha256 ? resolved
            : throw new TuningFailedException($"vocabulary '{reference.Name}' v{reference.Version} does not have the content its reference names");
    }

    private static string[] LabelsOf(VocabularyVersion vocabulary) => vocabulary.Labels.Select(l => l.Label).ToArray();
}
