using System.Security.Cryptography;
using System.Text;
using TaptPlatform.Contracts;

namespace TaptPlatform.Grains.Tenants;

/// <summary>What can be done to a tenant's keys, as functions from one <see cref="TenantKeys"/> record to the next.</summary>
internal static class TenantKeyRing
{
    public static (TenantKeys Keys, ApiKeyIssued Issued) Create(TenantKeys keys, string tenantId, string name, TenantLimits limits, ApiKeySigner signer,
        DateTimeOffset now)
    {
        Identifiers.RequireName(name, "API key");
        if (keys.Keys.Count(k => k.RevokedAt is null) >= limits.MaxLiveApiKeys)
            throw new TaptStorageQuotaException($"a tenant has at most {limits.MaxLiveApiKeys} live API keys: revoke one first");
        var keyId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var secret = signer.Mint(tenantId, keyId);
        var list = keys.Keys.Add(new TenantApiKey(keyId, name, Hash(secret), now));
        // Forget the longest-revoked keys past the bound: they validate nothing, only the listing shows them.
        while (list.Count > limits.MaxStoredApiKeys)
            list = list.Remove(list.Where(k => k.RevokedAt is not null).MinBy(k => k.RevokedAt)!);
        return (new TenantKeys(list), new ApiKeyIssued(keyId, name, secret));
    }

    /// <summary>The live key <paramref name="secret"/> is, or null.</summary>
    public static TenantApiKey? Validate(TenantKeys keys, string tenantId, string secret)
    {
        var parsed = ApiKeySecrets.Parse(secret);
        if (parsed is not { } p || p.TenantId != tenantId) return null;
        var hash = Convert.FromHexString(Hash(secret));
        foreach (var k in keys.Keys)
        {
            if (k.KeyId != p.KeyId || k.RevokedAt is not null) continue;
            if (CryptographicOperations.FixedTimeEquals(hash, Convert.FromHexString(k.Sha256))) return k;
        }
        return null;
    }

    /// <summary>The keys with <paramref name="keyId"/> revoked; null when it already was.</summary>
    public static TenantKeys? Revoke(TenantKeys keys, string keyId, DateTimeOffset now)
    {
        var k = keys.Keys.FirstOrDefault(x => x.KeyId == keyId) ?? throw new TaptNotFoundException($"API key '{keyId}' not found");
        return k.RevokedAt is not null ? null : new TenantKeys(keys.Keys.Replace(k, k with { RevokedAt = now }));
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
