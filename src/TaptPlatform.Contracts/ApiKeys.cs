namespace TaptPlatform.Contracts;

/// <summary>
/// A new API key. <see cref="Secret"/> is shown once: the tenant grain keeps only its SHA-256 hash.
/// The secret has the form <c>tapt.{tenantId}.{keyId}.{random}.{mac}</c> (see <see cref="ApiKeySigner"/>), so a
/// gateway knows which tenant grain to ask, and asks only for keys it could verify itself.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ApiKeyIssued(
    [property: Id(0)] string KeyId,
    [property: Id(1)] string Name,
    [property: Id(2)] string Secret);

/// <summary>What is known about a key without its secret.</summary>
[GenerateSerializer, Immutable]
public sealed record ApiKeyInfo(
    [property: Id(0)] string KeyId,
    [property: Id(1)] string Name,
    [property: Id(2)] DateTimeOffset CreatedAt,
    [property: Id(3)] DateTimeOffset? RevokedAt);

/// <summary>
/// Splits a key secret into its tenant and key id; null when it is not shaped like one of ours: a signed key
/// (<c>tapt.{tenantId}.{keyId}.{random}.{mac}</c>) or one issued before keys were signed (<c>tapt.{tenantId}.{keyId}.{random}</c>).
/// </summary>
public static class ApiKeySecrets
{
    /// <summary>The longest secret either shape can have (a 50-character tenant id, a signed key).</summary>
    public const int MaxLength = 200;

    public static (string TenantId, string KeyId)? Parse(string? secret)
    {
        if (secret is null || secret.Length > MaxLength) return null;
        var parts = secret.Split('.');
        if (parts.Length is not (4 or 5) || parts[0] != "tapt" || !Identifiers.IsValidTenantId(parts[1]) || parts[3].Length < 32) return null;
        if (!parts.Skip(2).All(p => p.Length > 0 && p.All(IsBase64UrlChar))) return null;
        return (parts[1], parts[2]);
    }

    private static bool IsBase64UrlChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_';
}
