using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace TaptPlatform.Contracts;

/// <summary>What a gateway can tell about a presented key without asking any grain.</summary>
public enum ApiKeyShape
{
    /// <summary>Not one of our keys: refuse.</summary>
    Malformed,

    /// <summary>Shaped like a signed key but its MAC is wrong (forged or altered): refuse.</summary>
    BadSignature,

    /// <summary>Its MAC is right: ask its tenant whether it exists and is not revoked.</summary>
    Signed,

    /// <summary>A key issued before keys were signed (four parts, no MAC): only its tenant can tell.</summary>
    Unsigned,
}

/// <summary>
/// Mints and verifies API keys <c>tapt.{tenantId}.{keyId}.{random}.{mac}</c>: the MAC is HMAC-SHA256, under a signing
/// key shared by the silos (which mint) and the gateways (which verify), of everything before it. A gateway refuses a
/// key with a wrong MAC itself, so a forged key costs no grain activation and no storage read.
/// </summary>
public sealed class ApiKeySigner
{
    public const int MinSigningKeyLength = 32;
    private const int RandomBytes = 32;

    private readonly byte[] _signingKey;

    public ApiKeySigner(string signingKey)
    {
        if (signingKey is null || signingKey.Length < MinSigningKeyLength)
            throw new ArgumentException($"the API key signing key must have at least {MinSigningKeyLength} characters", nameof(signingKey));
        _signingKey = Encoding.UTF8.GetBytes(signingKey);
    }

    /// <summary>A new secret for the tenant's key <paramref name="keyId"/>: 32 random bytes, then the MAC.</summary>
    public string Mint(string tenantId, string keyId)
    {
        var unsigned = $"tapt.{Identifiers.RequireTenantId(tenantId)}.{keyId}.{Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(RandomBytes))}";
        if (ApiKeySecrets.Parse(unsigned) is null) throw new ArgumentException($"invalid key id '{keyId}'", nameof(keyId));
        return unsigned + "." + MacText.Encode(MacOf(unsigned));
    }

    /// <summary>Classifies a presented key by its shape and MAC (in constant time for the MAC).</summary>
    public ApiKeyShape Check(string? secret)
    {
        if (ApiKeySecrets.Parse(secret) is null) return ApiKeyShape.Malformed;
        var lastDot = secret!.LastIndexOf('.');
        if (secret.Count(c => c == '.') == 3) return ApiKeyShape.Unsigned;
        return MacText.Matches(secret[(lastDot + 1)..], MacOf(secret[..lastDot])) ? ApiKeyShape.Signed : ApiKeyShape.BadSignature;
    }

    /// <summary>
    /// A key for another purpose's MAC, made from the signing key (HMAC of the purpose's name), so a MAC made for one
    /// purpose is never valid for another and no second secret has to be configured.
    /// </summary>
    public byte[] DeriveKey(string purpose) => HMACSHA256.HashData(_signingKey, Encoding.UTF8.GetBytes("tapt.derived." + purpose));

    private byte[] MacOf(string unsigned) => HMACSHA256.HashData(_signingKey, Encoding.UTF8.GetBytes(unsigned));
}
