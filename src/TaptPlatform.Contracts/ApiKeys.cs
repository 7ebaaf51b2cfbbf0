namespace TaptPlatform.Contracts;

/// <summary>
/// A new API key. <see cref="Secret"/> is shown once: the tenant grain keeps only its SHA-256 hash.
/// The secret has the form <c>tapt.{tenantId}.{keyId}.{random}</c>, so a gateway knows which tenant grain to ask.
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

/// <summary>Splits a key secret into its tenant and key id; null when it is not shaped like one of ours.</summary>
public static class ApiKeySecrets
{
    public static (string TenantId, string KeyId)? Parse(string? secret)
    {
        if (secret is null) return null;
        var parts = secret.Split('.');
        if (parts.Length != 4 || parts[0] != "tapt" || !Identifiers.IsValidTenantId(parts[1]) || parts[2].Length == 0 || parts[3].Length < 32) return null;
        return (parts[1], parts[2]);
    }
}
