using System.Collections.Immutable;
using System.Globalization;

namespace TaptPlatform.Contracts;

/// <summary>One label and, optionally, the prompt text the text encoder reads for it (default: the template).</summary>
[GenerateSerializer, Immutable]
public sealed record LabelEntry(
    [property: Id(0)] string Label,
    [property: Id(1)] string? PromptText = null);

/// <summary>What a tenant submits to create (a new version of) a named vocabulary.</summary>
[GenerateSerializer, Immutable]
public sealed record VocabularyDefinition(
    [property: Id(0)] string Name,
    [property: Id(1)] ImmutableArray<LabelEntry> Labels,
    [property: Id(2)] string Template = VocabularyDefinition.DefaultTemplate)
{
    /// <summary>The template of vocabularies that name none (the ML core's <c>LabelVocabulary.DefaultTemplate</c> is the same, by test).</summary>
    public const string DefaultTemplate = "a photo of a {0}.";
    public const int MaxLabels = 1000;

    /// <summary>Labels read through the default template.</summary>
    public static VocabularyDefinition FromLabels(string name, IEnumerable<string> labels) =>
        new(name, labels.Select(l => new LabelEntry(l)).ToImmutableArray());
}

/// <summary>One immutable version of a tenant's vocabulary. Jobs pin the version they were submitted with.</summary>
[GenerateSerializer, Immutable]
public sealed record VocabularyVersion(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string Name,
    [property: Id(2)] int Version,
    [property: Id(3)] ImmutableArray<LabelEntry> Labels,
    [property: Id(4)] string Template,
    [property: Id(5)] DateTimeOffset CreatedAt);

/// <summary>A vocabulary name with its latest version number and label count.</summary>
[GenerateSerializer, Immutable]
public sealed record VocabularySummary(
    [property: Id(0)] string Name,
    [property: Id(1)] int LatestVersion,
    [property: Id(2)] int LabelCount);

/// <summary>The prompt-text rule: a label's own prompt text when it has one, else its vocabulary's template filled with the label.</summary>
public static class PromptTexts
{
    public static string Of(LabelEntry label, string template) =>
        string.IsNullOrWhiteSpace(label.PromptText) ? string.Format(CultureInfo.InvariantCulture, template, label.Label) : label.PromptText;

    /// <summary>The prompt text of every label of a vocabulary version, in label order.</summary>
    public static ImmutableArray<string> Of(VocabularyVersion vocabulary) =>
        vocabulary.Labels.Select(l => Of(l, vocabulary.Template)).ToImmutableArray();
}

/// <summary>
/// A vocabulary version by reference: whose, which, and the SHA-256 of its labels and prompt texts (the key of the
/// engine's caches; whoever resolves the reference checks the texts it obtains against it).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record VocabularyReference(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string Name,
    [property: Id(2)] int Version,
    [property: Id(3)] string Sha256);
