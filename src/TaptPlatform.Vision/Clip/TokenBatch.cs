using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

public static class TokenBatch
{
    /// <summary>Right-pads id rows to one length. Safe for CLIP: the causal mask keeps padding out of the pooled token.</summary>
    public static Tensor Pad(IReadOnlyList<int[]> rows, int padId, int? length = null)
    {
        var len = length ?? rows.Max(r => r.Length);
        var flat = new long[rows.Count * len];
        Array.Fill(flat, padId);
        for (var i = 0; i < rows.Count; i++)
        {
            if (rows[i].Length > len) throw new ArgumentException($"row {i} has {rows[i].Length} ids, more than {len}");
            for (var j = 0; j < rows[i].Length; j++) flat[i * len + j] = rows[i][j];
        }
        return tensor(flat, [rows.Count, len]);
    }
}
