using TaptPlatform.Contracts;

namespace TaptPlatform.Grains;

/// <summary>
/// API key signing (configuration section <c>Tapt:ApiKeys</c>), the same on every silo (they mint keys) and every
/// gateway (they verify them before asking any grain).
/// </summary>
public sealed class ApiKeyOptions : ISelfValidatingOptions
{
    public const string Section = "Tapt:ApiKeys";

    /// <summary>The HMAC-SHA256 key of every key's MAC (at least 32 characters; changing it invalidates every signed key).</summary>
    public string? SigningKey { get; set; }

    /// <summary>
    /// Whether keys issued before keys were signed (<c>tapt.{tenant}.{keyId}.{random}</c>, no MAC) still authenticate,
    /// through their tenant grain as before. On by default so existing tenants keep working; turn it off once they have
    /// rotated their keys, and forged keys of that shape are refused by the gateway too.
    /// </summary>
    public bool AcceptUnsignedLegacyKeys { get; set; } = true;

    public void Validate()
    {
        if (SigningKey is null || SigningKey.Length < ApiKeySigner.MinSigningKeyLength)
            throw new ArgumentException($"{Section}:SigningKey must be set to at least {ApiKeySigner.MinSigningKeyLength} characters, the same on every silo and gateway");
    }
}
