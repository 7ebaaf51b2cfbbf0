using System.Collections.Immutable;
using Orleans.Concurrency;

namespace TaptPlatform.Contracts;

/// <summary>
/// A grain that keeps stored state for one tenant (its own key is the tenant's id, or a job of the tenant): tenant erasure
/// asks each to stop what it runs for the tenant and delete its stored records.
/// </summary>
public interface ITenantDataGrain : IGrainWithStringKey
{
    /// <summary>
    /// Stops what the grain runs for <paramref name="tenantId"/> (a running job or evaluation is cancelled first), deletes
    /// its stored records and its reminders, and deactivates. Returns how many stored records it deleted: 0 when there
    /// were none, so a repeat after a crash counts nothing twice. A grain of another tenant is left alone (0).
    /// </summary>
    Task<int> EraseTenantDataAsync(string tenantId);
}

/// <summary>The tenant grain's part in an erasure: revoking every key at once, before anything else is deleted.</summary>
public interface ITenantErasable : ITenantDataGrain
{
    /// <summary>Revokes every live key of the tenant; returns the ids of all its keys (for gateways to forget them).</summary>
    Task<ImmutableArray<string>> RevokeAllKeysAsync();
}

/// <summary>Where an erasure is: each phase is a step that can be repeated after a crash without harm.</summary>
public enum ErasurePhase
{
    /// <summary>No erasure was asked for.</summary>
    None,

    /// <summary>Keys are revoked; the tenant's unfinished jobs and evaluations are being cancelled.</summary>
    Cancelling,

    /// <summary>The grain states of the tenant's jobs and evaluations are being deleted.</summary>
    JobStates,

    /// <summary>The tenant's own grain states (tenant, retention, quota, prompt artifacts, evaluation index).</summary>
    TenantStates,

    /// <summary>The tenant's table rows (its job index).</summary>
    TableRows,

    /// <summary>Every blob of the tenant's container, then the container.</summary>
    Blobs,

    /// <summary>The signed summary is being written to the operator's container.</summary>
    Summary,

    /// <summary>Nothing of the tenant is left; the signed summary is the operator's record.</summary>
    Done,
}

/// <summary>
/// The operator's record of a finished erasure: what was deleted per kind, when, and an HMAC-SHA256
/// (<see cref="Signature"/>, base64url) over the canonical JSON of everything else, so the operator can verify it later.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ErasureSummary(
    [property: Id(0)] string TenantId,
    [property: Id(1)] DateTimeOffset Started,
    [property: Id(2)] DateTimeOffset Finished,
    [property: Id(3)] ImmutableSortedDictionary<string, long> Blobs,
    [property: Id(4)] ImmutableSortedDictionary<string, long> GrainStates,
    [property: Id(5)] ImmutableSortedDictionary<string, long> TableRows,
    [property: Id(6)] ImmutableArray<string> Jobs,
    [property: Id(7)] string? Signature = null)
{
    /// <summary>The summary's format (signed with it, so a summary cannot be read as another format's).</summary>
    [Id(8)] public int Format { get; init; } = 1;
}

/// <summary>An erasure's progress: its phase, what it deleted so far per kind, and at the end the signed summary.</summary>
[GenerateSerializer, Immutable]
public sealed record ErasureStatus(
    [property: Id(0)] string TenantId,
    [property: Id(1)] ErasurePhase Phase,
    [property: Id(2)] DateTimeOffset? Started,
    [property: Id(3)] ImmutableSortedDictionary<string, long> Blobs,
    [property: Id(4)] ImmutableSortedDictionary<string, long> GrainStates,
    [property: Id(5)] ImmutableSortedDictionary<string, long> TableRows,
    [property: Id(6)] int JobsFound,
    [property: Id(7)] string? LastError,
    [property: Id(8)] ErasureSummary? Summary);

/// <summary>
/// The erasure of one tenant (key: tenant id): a durable job that revokes its keys at once, then deletes its jobs' and
/// evaluations' states, its own grain states, its table rows and every blob of its container, and ends with a signed
/// summary kept in the operator's container. Resumable: its phase and cursor are stored, and a reminder (or the next
/// call) brings it back after its silo died.
/// </summary>
public interface ITenantErasureGrain : IGrainWithStringKey
{
    /// <summary>
    /// Starts the erasure (revoking every key of the tenant before it returns) or, when one was started already,
    /// returns it as it is. Throws <see cref="TaptNotFoundException"/> for a tenant that never had a key.
    /// </summary>
    Task<ErasureStatus> StartAsync();

    /// <summary>The erasure's progress (phase <see cref="ErasurePhase.None"/>: the tenant is not being erased).</summary>
    [AlwaysInterleave]
    Task<ErasureStatus> GetAsync();
}
