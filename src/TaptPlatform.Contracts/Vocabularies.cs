using System.Collections.Immutable;

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
