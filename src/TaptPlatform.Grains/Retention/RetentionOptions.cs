using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Retention;

/// <summary>
/// The operator's retention (configuration section <c>Tapt:Retention</c>): each kind's default period, which tenants may
/// shorten but not lengthen (empty: kept for ever unless a tenant sets a period), and how often sweeps run.
/// </summary>
public sealed class RetentionOptions : ISelfValidatingOptions
{
    public TimeSpan? Inputs { get; set; } = TimeSpan.FromDays(30);
    public TimeSpan? Results { get; set; } = TimeSpan.FromDays(365);
    public TimeSpan? Audit { get; set; } = TimeSpan.FromDays(365);
    public TimeSpan? Adversarial { get; set; } = TimeSpan.FromDays(90);

    /// <summary>
    /// Staging blobs (<c>staging/…</c>: large uploads on their way to a job) older than this were left by a process that
    /// died mid-upload; the sweep deletes them.
    /// </summary>
    public TimeSpan StagingPeriod { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How often each tenant's sweep runs (Orleans reminders fire at most once a minute).</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The shortest period a tenant may set.</summary>
    public TimeSpan MinimumPeriod { get; set; } = TimeSpan.FromMinutes(5);

    public RetentionPolicy Default => new(Inputs, Results, Audit, Adversarial);

    public void Validate()
    {
        if (SweepInterval < TimeSpan.FromMinutes(1) || SweepInterval > TimeSpan.FromDays(7))
            throw new ArgumentException("Tapt:Retention:SweepInterval must be between 1 minute and 7 days");
        if (MinimumPeriod <= TimeSpan.Zero) throw new ArgumentException("Tapt:Retention:MinimumPeriod must be positive");
        if (StagingPeriod <= TimeSpan.Zero) throw new ArgumentException("Tapt:Retention:StagingPeriod must be positive");
        foreach (var (name, period) in new[] { ("Inputs", Inputs), ("Results", Results), ("Audit", Audit), ("Adversarial", Adversarial) })
            if (period is { } p && p < MinimumPeriod)
                throw new ArgumentException($"Tapt:Retention:{name} must be at least Tapt:Retention:MinimumPeriod ({MinimumPeriod})");
    }
}
