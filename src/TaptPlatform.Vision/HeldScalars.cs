using TorchSharp;
using static TorchSharp.torch;

namespace TaptPlatform.Vision;

/// <summary>
/// Numbers for tensor operations as <see cref="Scalar"/>s that something holds. TorchSharp 0.107 turns a number given
/// to a tensor operation (<c>t * 2</c>, <c>t.clamp(0, 1)</c>, and the hidden <c>alpha</c> of every addition, <c>1 − t</c> included) into a
/// Scalar nothing references once its handle is read, so a collection on another thread may finalize (free) it while
/// libtorch still reads it (dotnet/TorchSharp#1434): a rare "Expected false to be true" from <c>c10::Scalar::toFloat</c>,
/// or a corrupted native heap. This project's tensor code therefore passes only held Scalars: these constants, which
/// are never freed, or a value held for the call with <c>using var s = value.ToScalar();</c>.
/// <c>HeldScalarsTests</c> compiles the project and fails on any number passed another way.
/// </summary>
public static class HeldScalars
{
    // Integer constants keep integer tensors integer, as the numbers they replace did.
    public static readonly Scalar Zero = 0.ToScalar();
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar Two = 2.ToScalar();
    public static readonly Scalar OneHalf = 0.5.ToScalar();
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();
    public static readonly Scalar PositiveInfinity = double.PositiveInfinity.ToScalar();

    /// <summary><c>a + b</c> (PyTorch's <c>torch.add</c> with <c>alpha = 1</c>), its alpha held.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>1 − t</c> as TorchSharp computes it (<c>−t + 1</c>), its numbers held.</summary>
    public static Tensor OneMinus(Tensor t) => t.negative().add(One, One);

    /// <summary>In-place <c>a += b</c>, its alpha held.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);
}
