using System.Collections.Immutable;

namespace TaptPlatform.Contracts;

/// <summary>
/// How long each kind of a tenant's stored data is kept after it was written: job inputs, results, audit records of
/// flagged images, and evaluations' adversarial artifacts. Null: kept (the operator's default applies, or for ever).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record RetentionPolicy(
    [property: Id(0)] TimeSpan? Inputs = null,
    [property: Id(1)] TimeSpan? Results = null,
    [property: Id(2)] TimeSpan? Audit = null,
    [property: Id(3)] TimeSpan? Adversarial = null)
{
    /// <summary>The kind's period (artifact kinds: inputs, results, audit, adversarial).</summary>
    public TimeSpan? For(string kind) => kind switch
    {
        "inputs" => Inputs,
        "results" => Results,
        "audit" => Audit,
        "adversarial" => Adversarial,
        _ => null,
    };

    /// <summary>Each kind's shorter period of the two (a tenant may shorten the operator's, never lengthen it).</summary>
    public RetentionPolicy Within(RetentionPolicy limit) => new(
        Shorter(Inputs, limit.Inputs), Shorter(Results, limit.Results), Shorter(Audit, limit.Audit), Shorter(Adversarial, limit.Adversarial));

    private static TimeSpan? Shorter(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null ? a : a < b ? a : b;
}

/// <summary>One sweep over a tenant's stored data: what it deleted per kind, and whether it finished.</summary>
[GenerateSerializer, Immutable]
public sealed record RetentionSweep(
    [property: Id(0)] DateTimeOffset Started,
    [property: Id(1)] DateTimeOffset? Finished,
    [property: Id(2)] int Examined,
    [property: Id(3)] ImmutableDictionary<string, int> Deleted);

/// <summary>A tenant's retention: the operator's default, the tenant's own periods, what applies, and what was deleted.</summary>
[GenerateSerializer, Immutable]
public sealed record RetentionStatus(
    [property: Id(0)] RetentionPolicy Effective,
    [property: Id(1)] RetentionPolicy OperatorDefault,
    [property: Id(2)] RetentionPolicy Tenant,
    [property: Id(3)] RetentionSweep? LastSweep,
    [property: Id(4)] ImmutableDictionary<string, long> DeletedTotal,
    [property: Id(5)] TimeSpan SweepInterval);

/// <summary>
/// A tenant's data retention (key: tenant id): its periods, and the reminder-driven sweep that deletes what expired.
/// The sweep is resumable (it keeps its place in the listing) and idempotent (deleting what is gone is a no-op).
/// </summary>
public interface IRetentionGrain : ITenantDataGrain
{
    Task<RetentionStatus> GetAsync();

    /// <summary>Sets the tenant's periods; a period longer than the operator's or shorter than the minimum is refused.</summary>
    Task<RetentionStatus> SetAsync(RetentionPolicy tenant);

    /// <summary>Makes sure the periodic sweep is scheduled (called when a tenant first stores data).</summary>
    Task EnsureScheduledAsync();

    /// <summary>Runs a sweep now (the reminder's work) and returns it.</summary>
    Task<RetentionSweep> SweepNowAsync();
}
