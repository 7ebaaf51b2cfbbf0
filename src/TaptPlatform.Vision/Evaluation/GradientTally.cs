using TaptPlatform.Vision.Attacks;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Evaluation;

/// <summary>
/// Counts, per attacked model, the clean images whose cross-entropy gradient with respect to the pixels is all zero
/// or not finite: the first of AutoAttack's masking checks, made on the very function each attack differentiates.
/// </summary>
public sealed class GradientTally
{
    private readonly Dictionary<string, (int Zero, int NonFinite, int Images)> _counts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<(bool Zero, bool NonFinite)>> _perImage = new(StringComparer.Ordinal);

    public bool Has(string method) => _counts.ContainsKey(method);

    /// <summary>Per image tallied for <paramref name="method"/>, in the order added: whether its gradient was all zero, not finite (empty if never tallied).</summary>
    public IReadOnlyList<(bool Zero, bool NonFinite)> PerImage(string method) => _perImage.TryGetValue(method, out var list) ? list : [];

    public void Add(string method, LogitsFunction model, Tensor images, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var grad = Projection.Gradient(model, images, l => AttackLosses.CrossEntropy(l, labels), out _, out _).flatten(1);
        var zero = grad.abs().sum(1).eq(Zero).cpu().data<bool>().ToArray();
        var nonFinite = grad.isfinite().logical_not().any(1).cpu().data<bool>().ToArray();
        var (z, f, n) = _counts.GetValueOrDefault(method);
        _counts[method] = (z + zero.Count(b => b), f + nonFinite.Count(b => b), n + (int)images.shape[0]);
        if (!_perImage.TryGetValue(method, out var list)) _perImage[method] = list = [];
        list.AddRange(zero.Zip(nonFinite));
    }

    public List<MaskingCheck> Checks() =>
        _counts.Select(kv => MaskingChecks.OfGradients(kv.Key, kv.Value.Zero, kv.Value.NonFinite, kv.Value.Images)).ToList();
}
