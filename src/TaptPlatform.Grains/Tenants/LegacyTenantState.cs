using TaptPlatform.Contracts;

// These keep the namespace and names they were written with: the Orleans serializer reads what earlier versions stored.
namespace TaptPlatform.Grains;

/// <summary>
/// The single-entity tenant state written before the records were split (read once, moved into the records, then
/// cleared). Kept with its field ids so the Orleans serializer reads what earlier versions wrote.
/// </summary>
[GenerateSerializer]
public sealed class TenantState
{
    [Id(0)] public Dictionary<string, List<VocabularyVersion>> Vocabularies { get; set; } = new(StringComparer.Ordinal);
    [Id(1)] public Dictionary<string, PromptConfiguration> PromptConfigurations { get; set; } = new(StringComparer.Ordinal);
    [Id(2)] public List<StoredApiKey> ApiKeys { get; set; } = [];
    [Id(3)] public List<string> Jobs { get; set; } = [];
    [Id(4)] public Dictionary<string, List<PromptConfiguration>> PromptConfigurationVersions { get; set; } = new(StringComparer.Ordinal);
    [Id(5)] public Dictionary<string, int> LastVersions { get; set; } = new(StringComparer.Ordinal);

    public bool IsEmpty => Vocabularies.Count == 0 && PromptConfigurations.Count == 0 && ApiKeys.Count == 0 && Jobs.Count == 0;
}

/// <summary>An API key as the single-entity state stored it.</summary>
[GenerateSerializer]
public sealed class StoredApiKey
{
    [Id(0)] public string KeyId { get; set; } = "";
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public string Sha256 { get; set; } = "";
    [Id(3)] public DateTimeOffset CreatedAt { get; set; }
    [Id(4)] public DateTimeOffset? RevokedAt { get; set; }
}
