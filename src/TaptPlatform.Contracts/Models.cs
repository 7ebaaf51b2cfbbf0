using System.Collections.Immutable;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>One file of a registered model: its path in the model's folder, size and SHA-256 (lower-case hex).</summary>
[GenerateSerializer, Immutable]
public sealed record ModelFile(
    [property: Id(0)] string Path,
    [property: Id(1)] long Bytes,
    [property: Id(2)] string Sha256);

/// <summary>
/// A model in the platform's registry: a Hugging Face CLIP folder kept under <see cref="Prefix"/> in the models
/// container, verified by loading it (every file's SHA-256 recorded; <see cref="Checksum"/> is the one prompt artifacts
/// are bound to).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record RegisteredModel(
    [property: Id(0)] string Name,
    [property: Id(1)] string Checksum,
    [property: Id(2)] string Prefix,
    [property: Id(3)] ImmutableArray<ModelFile> Files,
    [property: Id(4)] long Bytes,
    [property: Id(5)] int ImageSize,
    [property: Id(6)] int PatchSize,
    [property: Id(7)] int VisionWidth,
    [property: Id(8)] int VisionLayers,
    [property: Id(9)] DateTimeOffset RegisteredAt,
    [property: Id(10)] string Source);

/// <summary>What a registered model is, and which accelerator silo's model grain serves it and whether it is loaded there.</summary>
[GenerateSerializer, Immutable]
public sealed record ModelListing(
    [property: Id(0)] RegisteredModel Model,
    [property: Id(1)] string? Silo,
    [property: Id(2)] bool Loaded);

/// <summary>
/// The platform's model registry (one grain, key <see cref="Key"/>): models by name. Registering verifies the folder on
/// an accelerator silo first; the same name with the same checksum is a no-op, with another checksum a conflict.
/// </summary>
public interface IModelRegistryGrain : IGrainWithStringKey
{
    public const string Key = "models";

    /// <summary>Verifies the folder under <paramref name="prefix"/> in the models container and records it.</summary>
    [ResponseTimeout("00:30:00")]
    Task<RegisteredModel> RegisterAsync(string name, string prefix, string source);

    Task<ImmutableArray<RegisteredModel>> ListAsync();

    /// <summary>The registered model, or null.</summary>
    Task<RegisteredModel?> GetAsync(string name);

    /// <summary>Forgets the model (its blobs stay: other registrations or silos' caches may use them).</summary>
    Task RemoveAsync(string name);
}

/// <summary>
/// Verifies a model folder kept in the models container (key: model name) on an accelerator silo: the files are read
/// to a temporary folder, hashed, and loaded exactly as a silo loads a model. Holds no state.
/// </summary>
public interface IModelVerificationGrain : IGrainWithStringKey
{
    /// <summary>The verified model's record; <see cref="TaptRequestException"/> naming what does not fit.</summary>
    [ResponseTimeout("00:30:00")]
    Task<RegisteredModel> VerifyAsync(string prefix, string source);
}
