using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace TaptPlatform.Contracts;

/// <summary>The base64url text form of the MACs we issue (API keys, erasure summaries), and its check.</summary>
public static class MacText
{
    public static string Encode(ReadOnlySpan<byte> mac) => Base64Url.EncodeToString(mac);

    /// <summary>
    /// True when <paramref name="presented"/> is exactly the encoding of <paramref name="mac"/>, compared in constant
    /// time. The text is never decoded: a decoder throws on a last character with stray low bits, and a wrong MAC must
    /// be refused, not crash its request.
    /// </summary>
    public static bool Matches(string presented, ReadOnlySpan<byte> mac) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(presented), Encoding.ASCII.GetBytes(Encode(mac)));
}
