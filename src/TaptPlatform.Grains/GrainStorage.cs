namespace TaptPlatform.Grains;

/// <summary>The names of the grain storage providers the grains use; a silo must register both.</summary>
public static class GrainStorageNames
{
    /// <summary>Tenant state: vocabularies, prompt configurations, key hashes, job ids (small; Azure Table).</summary>
    public const string Tenants = "tenants";

    /// <summary>Job state: definition, image entries, result summaries (up to 10,000 images; Azure Blob).</summary>
    public const string Jobs = "jobs";
}
