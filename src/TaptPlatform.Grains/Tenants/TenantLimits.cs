namespace TaptPlatform.Grains.Tenants;

/// <summary>
/// How much one tenant may store (configuration section <c>Tapt:Tenants</c>). The record-bound limits keep each tenant
/// record under Azure Table's entity cap (983,040 bytes) with room to spare, which TenantRecordSizeTests check by
/// serialising the largest records they allow; the byte limit bounds the tenant's vocabulary blobs.
/// </summary>
public sealed class TenantLimits : ISelfValidatingOptions
{
    /// <summary>Azure Table's entity cap as Orleans' table storage splits state over properties.</summary>
    public const int RecordCapBytes = 983_040;

    public int MaxVocabularies { get; set; } = 1000;

    /// <summary>Vocabulary versions kept across all of the tenant's vocabularies.</summary>
    public int MaxVocabularyVersions { get; set; } = 2000;

    /// <summary>Bytes of vocabulary content (labels, prompt texts, templates) kept across all versions.</summary>
    public long MaxVocabularyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Prompt configuration versions kept across all of the tenant's configurations.</summary>
    public int MaxPromptConfigurationVersions { get; set; } = 1000;

    /// <summary>Prompt artifact versions kept across all of the tenant's uploaded artifacts.</summary>
    public int MaxPromptArtifactVersions { get; set; } = 200;

    /// <summary>Bytes of uploaded prompt artifacts kept across all versions.</summary>
    public long MaxPromptArtifactBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    public int MaxLiveApiKeys { get; set; } = 100;

    /// <summary>Keys kept in all, live and revoked: past it, the oldest revoked keys are forgotten (they validate nothing).</summary>
    public int MaxStoredApiKeys { get; set; } = 1000;

    public void Validate()
    {
        // Upper ends: the largest record these allow must fit the entity cap (tested).
        if (MaxVocabularies is < 1 or > 1000) throw new ArgumentException("Tapt:Tenants:MaxVocabularies must be in 1..1000");
        if (MaxVocabularyVersions is < 1 or > 2000) throw new ArgumentException("Tapt:Tenants:MaxVocabularyVersions must be in 1..2000");
        if (MaxVocabularyBytes < 1) throw new ArgumentException("Tapt:Tenants:MaxVocabularyBytes must be positive");
        if (MaxPromptConfigurationVersions is < 1 or > 1000) throw new ArgumentException("Tapt:Tenants:MaxPromptConfigurationVersions must be in 1..1000");
        if (MaxPromptArtifactVersions is < 1 or > 1000) throw new ArgumentException("Tapt:Tenants:MaxPromptArtifactVersions must be in 1..1000");
        if (MaxPromptArtifactBytes < 1) throw new ArgumentException("Tapt:Tenants:MaxPromptArtifactBytes must be positive");
        if (MaxLiveApiKeys is < 1 or > 1000) throw new ArgumentException("Tapt:Tenants:MaxLiveApiKeys must be in 1..1000");
        if (MaxStoredApiKeys < MaxLiveApiKeys || MaxStoredApiKeys > 2000) throw new ArgumentException("Tapt:Tenants:MaxStoredApiKeys must be in MaxLiveApiKeys..2000");
    }
}
