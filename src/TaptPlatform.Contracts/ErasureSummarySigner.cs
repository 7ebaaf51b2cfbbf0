using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TaptPlatform.Contracts;

/// <summary>
/// Signs and verifies <see cref="ErasureSummary"/> records: HMAC-SHA256, under a key derived from the API key signing
/// key (<see cref="ApiKeySigner.DeriveKey"/>), of the summary's canonical JSON without its signature. Silos sign; any
/// gateway (which holds the same signing key) verifies a summary the operator presents later.
/// </summary>
public sealed class ErasureSummarySigner(ApiKeySigner signer)
{
    private readonly byte[] _key = signer.DeriveKey("erasure-summary");

    /// <summary>The JSON form of summaries (camelCase, as the API writes them); the canonical form is this, unsigned.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public ErasureSummary Sign(ErasureSummary summary) => summary with { Signature = Mac(summary) };

    /// <summary>True when the summary carries the signature of exactly its content (compared in constant time).</summary>
    public bool Verify(ErasureSummary summary)
    {
        return summary.Signature is { } presented && MacText.Matches(presented, HMACSHA256.HashData(_key, Canonical(summary)));
    }

    /// <summary>The signed bytes: the summary's JSON with the signature left out and every count in ordinal key order.</summary>
    public static byte[] Canonical(ErasureSummary summary) =>
        Encoding.UTF8.GetBytes(JsonSerializer.Serialize(summary with
        {
            Signature = null,
            Blobs = summary.Blobs.WithComparers(StringComparer.Ordinal),
            GrainStates = summary.GrainStates.WithComparers(StringComparer.Ordinal),
            TableRows = summary.TableRows.WithComparers(StringComparer.Ordinal),
        }, Json));

    private string Mac(ErasureSummary summary) => MacText.Encode(HMACSHA256.HashData(_key, Canonical(summary)));
}
