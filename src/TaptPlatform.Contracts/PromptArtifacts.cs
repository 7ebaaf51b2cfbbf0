using System.Collections.Immutable;
using System.Text.Json.Serialization;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>
/// One version of a tenant's uploaded prompt artifact, as its content (whose SHA-256 it is) was checked against a model:
/// the blob <c>prompts/{name}/v{version:D6}.safetensors</c> in the tenant's container.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TenantArtifactReference(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string Name,
    [property: Id(2)] int Version,
    [property: Id(3)] string Sha256)
{
    /// <summary>How results and reports name it: <c>{name}@v{version}</c> ('@' is never part of a name).</summary>
    [JsonIgnore]
    public string DisplayName => $"{Name}@v{Version}";
}

/// <summary>
/// A prompt artifact a tenant can use: its own (<see cref="Owner"/> "tenant", versioned) or an operator's beside a
/// model ("operator", <see cref="Version"/> 0, no size or upload time). Design and shape come from the checked file.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PromptArtifactInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] int Version,
    [property: Id(2)] string Owner,
    [property: Id(3)] string Model,
    [property: Id(4)] string ModelChecksum,
    [property: Id(5)] string Design,
    [property: Id(6)] int TokensPerLayer,
    [property: Id(7)] long Bytes,
    [property: Id(8)] string Sha256,
    [property: Id(9)] DateTimeOffset? CreatedAt,
    [property: Id(10)] int Tensors,
    [property: Id(11)] bool HasCleanPrompts,
    [property: Id(12)] bool HasStatistics)
{
    /// <summary>The prompt training job that made this version (null: uploaded).</summary>
    [Id(13)]
    public string? TrainingJobId { get; init; }

    public const string TenantOwner = "tenant";
    public const string OperatorOwner = "operator";
}

/// <summary>
/// An artifact streamed into a staging blob (<c>staging/prompts/{Id}</c>), hashed while streaming: an upload, or the end of
/// the prompt training job <see cref="TrainingJobId"/>, which adds at most one version (a resumed job that asks again gets it back).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record StagedPromptArtifact(
    [property: Id(0)] string Id,
    [property: Id(1)] long Length,
    [property: Id(2)] string Sha256,
    [property: Id(3)] string? TrainingJobId = null);

/// <summary>
/// A tenant's prompt artifacts (key: tenant id): the catalogue of names and versions; contents are blobs in the tenant's
/// container. Uploads are checked on an accelerator silo against the model they name before they are kept.
/// </summary>
public interface IPromptArtifactsGrain : ITenantDataGrain
{
    /// <summary>
    /// Checks a staged upload against <paramref name="model"/> and keeps it as the next version of
    /// <paramref name="name"/>; the staging blob is deleted either way. <see cref="TaptRequestException"/> names what
    /// does not fit; <see cref="TaptStorageQuotaException"/> when the tenant's artifact limits are reached. A staged artifact
    /// of a training job that already added a version of <paramref name="name"/> returns that version and adds none.
    /// </summary>
    Task<PromptArtifactInfo> AddVersionAsync(string name, string model, StagedPromptArtifact staged);

    /// <summary>Every kept version, by name then version.</summary>
    Task<ImmutableArray<PromptArtifactInfo>> ListAsync();

    /// <summary>One version (null: the latest); <see cref="TaptNotFoundException"/> when missing.</summary>
    [AlwaysInterleave]
    Task<PromptArtifactInfo> GetAsync(string name, int? version = null);

    /// <summary>
    /// Deletes one version (or all), refused with <see cref="TaptConflictException"/> while a prompt configuration
    /// version references it (delete or replace that first). Deleted version numbers are never reused.
    /// </summary>
    Task DeleteAsync(string name, int? version = null);
}

/// <summary>
/// Checks prompt artifacts against one model (key: model name) on an accelerator silo, where the model is: the file is
/// loaded as the tuning engine would load it (format, the model checksum it is bound to, every prompt and statistics
/// shape), and lists the operator's artifacts beside the model.
/// </summary>
public interface IPromptArtifactCheckGrain : IGrainWithStringKey
{
    /// <summary>The checked artifact's description; <see cref="TaptRequestException"/> naming what does not fit.</summary>
    [ResponseTimeout("00:05:00")]
    Task<PromptArtifactInfo> CheckStagedAsync(string tenantId, string name, StagedPromptArtifact staged);

    /// <summary>The artifacts an operator put beside the model (the default <c>tapt-prompts</c> and any other).</summary>
    [ResponseTimeout("00:05:00")]
    Task<ImmutableArray<PromptArtifactInfo>> ListOperatorArtifactsAsync();
}
