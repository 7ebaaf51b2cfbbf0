using System.Text.RegularExpressions;

namespace TaptPlatform.Contracts;

/// <summary>
/// The shapes of the identifiers that cross the grain boundary. Tenant ids become blob container names
/// (<c>tenant-{id}</c>), so they are restricted to what Azure allows there; job ids and names never contain
/// a path separator, so no identifier can address another tenant's data.
/// </summary>
public static partial class Identifiers
{
    /// <summary>3–50 characters: lower-case letters, digits and inner hyphens.</summary>
    public static bool IsValidTenantId(string? tenantId) => tenantId is not null && TenantPattern().IsMatch(tenantId) && !tenantId.Contains("--", StringComparison.Ordinal);

    /// <summary>8–64 characters: lower-case letters, digits and inner hyphens.</summary>
    public static bool IsValidJobId(string? jobId) => jobId is not null && JobPattern().IsMatch(jobId);

    /// <summary>Vocabulary, prompt configuration, model and API key names: 1–64 of letters, digits, '.', '_' and '-'.</summary>
    public static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name) && name is not ("." or "..");

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="tenantId"/> is a valid tenant id.</summary>
    public static string RequireTenantId(string? tenantId) =>
        IsValidTenantId(tenantId) ? tenantId! : throw new ArgumentException($"invalid tenant id '{tenantId}': use 3-50 lower-case letters, digits and single inner hyphens");

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="jobId"/> is a valid job id.</summary>
    public static string RequireJobId(string? jobId) =>
        IsValidJobId(jobId) ? jobId! : throw new ArgumentException($"invalid job id '{jobId}': use 8-64 lower-case letters, digits and inner hyphens");

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is a valid name.</summary>
    public static string RequireName(string? name, string what) =>
        IsValidName(name) ? name! : throw new ArgumentException($"invalid {what} name '{name}': use 1-64 letters, digits, '.', '_' and '-'");

    // Anchored with \A and \z: `$` also matches before a final newline, so "demo\n" passed as a tenant id.

    /// <summary>A fresh job id.</summary>
    public static string NewJobId() => "job-" + Guid.NewGuid().ToString("N");

    [GeneratedRegex(@"\A[a-z0-9][a-z0-9-]{1,48}[a-z0-9]\z", RegexOptions.CultureInvariant)]
    private static partial Regex TenantPattern();

    [GeneratedRegex(@"\A[a-z0-9][a-z0-9-]{6,62}[a-z0-9]\z", RegexOptions.CultureInvariant)]
    private static partial Regex JobPattern();

    [GeneratedRegex(@"\A[A-Za-z0-9._-]{1,64}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}
