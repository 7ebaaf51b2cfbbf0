using TaptPlatform.Contracts;

namespace TaptPlatform.Gateway.Tests;

public sealed class ApiKeySignerTests
{
    private static readonly ApiKeySigner Signer = new("signing-key-of-the-api-key-signer-tests-0123");

    [Fact]
    public void A_minted_key_is_signed_names_its_tenant_and_key_and_verifies_under_its_signing_key_only()
    {
        var secret = Signer.Mint("acme", "0123456789ab");
        Assert.Equal(ApiKeyShape.Signed, Signer.Check(secret));
        Assert.Equal(("acme", "0123456789ab"), ApiKeySecrets.Parse(secret));
        Assert.Equal(5, secret.Split('.').Length);
        Assert.NotEqual(secret, Signer.Mint("acme", "0123456789ab"));   // random part
        Assert.Equal(ApiKeyShape.BadSignature, new ApiKeySigner("another-signing-key-of-the-signer-tests-0123").Check(secret));
        // The longest tenant id still fits the length every reader accepts.
        Assert.Equal(ApiKeyShape.Signed, Signer.Check(Signer.Mint(new string('a', 50), "0123456789ab")));
    }

    [Fact]
    public void Any_change_to_a_signed_key_breaks_its_signature()
    {
        var secret = Signer.Mint("acme", "0123456789ab");
        var parts = secret.Split('.');
        string With(int index, string value) => string.Join('.', parts.Select((p, i) => i == index ? value : p));
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(1, "acme2")));
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(2, "ba9876543210")));
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(3, Flip(parts[3]))));
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(4, Flip(parts[4]))));
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(4, parts[4][..^1])));            // short MAC
        Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(4, parts[4] + "A")));            // long MAC
        // Every other last character of the MAC, including those that differ only in the bits its encoding leaves
        // unused (a decoder throws on those): each is refused, none throws.
        foreach (var c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".Where(c => c != parts[4][^1]))
            Assert.Equal(ApiKeyShape.BadSignature, Signer.Check(With(4, parts[4][..^1] + c)));

        static string Flip(string s) => (s[0] == 'A' ? 'B' : 'A') + s[1..];
    }

    [Fact]
    public void Keys_issued_before_signing_are_told_apart_and_anything_else_is_malformed()
    {
        var legacy = "tapt.acme.0123456789ab." + new string('x', 43);
        Assert.Equal(ApiKeyShape.Unsigned, Signer.Check(legacy));
        Assert.Equal(("acme", "0123456789ab"), ApiKeySecrets.Parse(legacy));
        var signed = Signer.Mint("acme", "0123456789ab");
        foreach (var bad in new[]
        {
            null, "", "tapt", "tapt.acme", "tapt.acme.0123456789ab", "tapt.acme.0123456789ab.short", "nope.acme.0123456789ab." + new string('x', 43),
            "tapt.ACME.0123456789ab." + new string('x', 43), "tapt.acme..'" + new string('x', 43), signed + ".extra", signed + "\n", signed[..^1] + "*",
            "tapt.acme\n.0123456789ab." + new string('x', 43), "tapt." + new string('a', 200) + ".0123456789ab." + new string('x', 43),
        })
            Assert.Equal(ApiKeyShape.Malformed, Signer.Check(bad));
    }

    [Fact]
    public void A_signing_key_shorter_than_32_characters_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new ApiKeySigner("too-short"));
        Assert.Throws<ArgumentException>(() => Signer.Mint("Not A Tenant", "0123456789ab"));
    }
}
