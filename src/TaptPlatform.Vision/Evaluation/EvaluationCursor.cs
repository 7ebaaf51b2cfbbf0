using static TorchSharp.torch;

namespace TaptPlatform.Vision.Evaluation;

/// <summary>
/// Where an evaluation's random streams stand between two batches: the attacks' generator and the count of the adaptive
/// attack's tuning calls. Carried from batch to batch (saved as bytes in between), so an evaluation split into batches run
/// one at a time, anywhere, draws exactly what one uninterrupted run draws.
/// </summary>
public sealed class EvaluationCursor : IDisposable
{
    private EvaluationCursor(Generator generator, int eotCalls)
    {
        Generator = generator;
        EotCalls = eotCalls;
    }

    public Generator Generator { get; }

    /// <summary>Tuning runs the adaptive attack made so far (each seeds its views from this count).</summary>
    public int EotCalls { get; set; }

    /// <summary>The cursor of an evaluation's first batch.</summary>
    public static EvaluationCursor Start(int seed) => new(new Generator((ulong)(seed + 1)), 0);

    /// <summary>A cursor saved by <see cref="SaveState"/>; null state: the first batch's.</summary>
    public static EvaluationCursor Restore(int seed, byte[]? state, int eotCalls)
    {
        var cursor = Start(seed);
        cursor.EotCalls = eotCalls;
        if (state is { Length: > 0 })
        {
            using var t = tensor(state, dtype: ScalarType.Byte);
            cursor.Generator.set_state(t);
        }
        return cursor;
    }

    /// <summary>The generator's state as bytes (with <see cref="EotCalls"/>, all a later batch needs).</summary>
    public byte[] SaveState()
    {
        using var t = Generator.get_state();
        return t.data<byte>().ToArray();
    }

    public void Dispose() => Generator.Dispose();
}
