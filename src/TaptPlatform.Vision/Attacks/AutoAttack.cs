using static TorchSharp.torch;

namespace TaptPlatform.Vision.Attacks;

/// <summary>
/// AutoAttack (Croce &amp; Hein, ICML 2020): attacks run in a fixed order, each on the images every earlier one left
/// classified correctly. <see cref="Standard"/>: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000
/// queries), one restart each. <see cref="Randomised"/>, for defenses with randomness (TAPT's views are random):
/// APGD-CE and APGD-DLR, whose expectation over the randomness (EOT) comes from the model they are handed (the
/// evaluation's EOT samples). An image no stage fools comes back at the last stage's point, the strongest input
/// found for a randomised defense.
/// </summary>
public sealed class AutoAttack(string name, double epsilon, IReadOnlyList<IAttack> stages) : IAttack
{
    /// <summary>AutoAttack's EOT draws in its version for randomised defenses.</summary>
    public const int RandomisedEotSamples = 20;

    public string Name => name;
    public double Epsilon => epsilon;
    public IReadOnlyList<IAttack> Stages => stages;

    /// <summary>
    /// Per image of the last <see cref="Perturb"/>: the 1-based stage that fooled it, 0 when it was misclassified
    /// before any attack, −1 when no stage fooled it.
    /// </summary>
    public int[] BrokenBy { get; private set; } = [];

    public static AutoAttack Standard(double epsilon, int steps = 100, int queries = AttackSettings.DefaultQueries, int targetClasses = 9) =>
        new("AutoAttack", epsilon,
        [
            new ApgdAttack(epsilon, steps, 1, targeted: false, targetClasses),
            new ApgdAttack(epsilon, steps, 1, targeted: true, targetClasses),
            new FabAttack(epsilon, steps, targetClasses),
            new SquareAttack(epsilon, queries),
        ]);

    public static AutoAttack Randomised(double epsilon, int steps = 100) =>
        new("AutoAttack-rand", epsilon,
        [
            new ApgdAttack(epsilon, steps, 1, targeted: false, 9),
            new ApgdAttack(epsilon, steps, 1, targeted: false, 9, dlr: true),
        ]);

    /// <summary>Robust accuracy after each stage from <see cref="BrokenBy"/>-style outcomes (stage k's entry counts images no stage ≤ k fooled).</summary>
    public static double[] RobustAfterEachStage(IReadOnlyList<int> brokenBy, int stageCount) =>
        Enumerable.Range(1, stageCount)
            .Select(k => brokenBy.Count == 0 ? double.NaN : brokenBy.Count(b => b == -1 || b > k) / (double)brokenBy.Count)
            .ToArray();

    public Tensor Perturb(LogitsFunction model, Tensor images, Tensor labels, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = images.detach();
        var result = x.clone();
        var broken = new int[x.shape[0]];
        Tensor robust;
        using (no_grad()) robust = model(x).argmax(-1).eq(labels);
        var initially = robust.cpu().data<bool>().ToArray();
        for (var i = 0; i < broken.Length; i++) broken[i] = initially[i] ? -1 : 0;
        for (var stage = 0; stage < stages.Count; stage++)
        {
            var idx = robust.nonzero().squeeze(1);
            if (idx.shape[0] == 0) break;
            var ys = labels.index_select(0, idx);
            var adv = stages[stage].Perturb(model, x.index_select(0, idx), ys, generator);
            Tensor fooled;
            using (no_grad()) fooled = model(adv).argmax(-1).ne(ys);
            result.index_copy_(0, idx, adv);
            robust.index_copy_(0, idx, fooled.logical_not());
            var ids = idx.cpu().data<long>().ToArray();
            var hit = fooled.cpu().data<bool>().ToArray();
            for (var i = 0; i < ids.Length; i++)
                if (hit[i]) broken[ids[i]] = stage + 1;
        }
        BrokenBy = broken;
        return result.MoveToOuterDisposeScope();
    }
}
