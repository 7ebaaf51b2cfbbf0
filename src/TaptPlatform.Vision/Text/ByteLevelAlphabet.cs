namespace TaptPlatform.Vision.Text;

/// <summary>GPT-2's reversible byte → printable-character table, which CLIP's BPE runs on.</summary>
public static class ByteLevelAlphabet
{
    public static IReadOnlyList<char> ByteToChar { get; } = Build();

    private static char[] Build()
    {
        var table = new char[256];
        var printable = new bool[256];
        for (var b = '!'; b <= '~'; b++) printable[b] = true;
        for (var b = 0xA1; b <= 0xAC; b++) printable[b] = true;
        for (var b = 0xAE; b <= 0xFF; b++) printable[b] = true;
        var next = 256;
        for (var b = 0; b < 256; b++) table[b] = printable[b] ? (char)b : (char)next++;
        return table;
    }

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }
}
