using TaptPlatform.Vision.Attacks;
using TaptPlatform.Vision.Data;
using TaptPlatform.Vision.Evaluation;
using TaptPlatform.Vision.Tapt;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Tests.Tapt;

/// <summary>
/// An evaluation run batch by batch, its random streams saved as bytes and restored between batches (as the platform's
/// units do, on any silo), gives the outcomes of one uninterrupted run; and a cancelled evaluation stops inside a batch.
/// </summary>
public class EvaluationCursorTests
{
    private static (TinyTapt T, GreyImageDataset Data) Setup()
    {
        var t = new TinyTapt();
        var rng = new Random(11);
        var pixels = new byte[7 * 24 * 24];
        rng.NextBytes(pixels);
        return (t, new GreyImageDataset(new LabelledImages(t.Vocabulary.Labels, pixels, [0, 1, 0, 1, 0, 1, 0], 24, 24)));
    }

    [Theory]
    [InlineData(AttackKind.Pgd, EvaluationProtocol.NonAdaptive)]
    [InlineData(AttackKind.Di, EvaluationProtocol.NonAdaptive)]
    [InlineData(AttackKind.Pgd, EvaluationProtocol.Adaptive)]
    public void Batches_with_a_saved_and_restored_cursor_give_the_outcomes_of_one_run(AttackKind kind, EvaluationProtocol protocol)
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 });
        var evaluator = new RobustnessEvaluator(t.Clip, defense, t.Vocabulary);
        var options = new EvaluationOptions(new AttackSettings(kind, 16.0 / 255, 4, 4.0 / 255), protocol, Seed: 2, BatchSize: 3, EotSamples: 2);
        var order = DatasetSampling.Sample(7, 7, 2);
        var whole = evaluator.Evaluate(data, order, options);

        var outcomes = new List<ImageOutcome>();
        byte[]? state = null;
        var eotCalls = 0;
        foreach (var batch in order.Chunk(options.BatchSize))
        {
            using var cursor = EvaluationCursor.Restore(options.Seed, state, eotCalls);
            outcomes.AddRange(evaluator.EvaluateBatch(data, batch, options, cursor, withPixels: false).Outcomes);
            state = cursor.SaveState();
            eotCalls = cursor.EotCalls;
        }

        Assert.Equal(whole.Images, outcomes);
        // PGD's random starts move the generator, so its batches did depend on what came before; DI-FGSM draws from its own
        // Random seeded by the generator's initial seed, the same at every call.
        using (var start = EvaluationCursor.Start(options.Seed))
            Assert.Equal(kind != AttackKind.Di, !start.SaveState().SequenceEqual(state!));
        Assert.True(protocol == EvaluationProtocol.NonAdaptive ? eotCalls == 0 : eotCalls > 0);
    }

    [Fact]
    public void A_cancelled_evaluation_stops_inside_its_batch_before_any_outcome()
    {
        var (t, data) = Setup();
        using var _ = t;
        var defense = new TaptDefense(t.Clip, t.Artifact, new TaptOptions { Views = 8, SelectionFraction = 0.25, AlignmentLayers = 2 });
        using var stop = new CancellationTokenSource();
        var batches = 0;
        // The token is cancelled once the batch has begun (its images are read): the next attacked-model call stops it.
        var cancelling = new CancellingDataset(data, stop);
        var options = new EvaluationOptions(new AttackSettings(AttackKind.Pgd, 8.0 / 255, 50), EvaluationProtocol.NonAdaptive, BatchSize: 7)
        {
            Cancellation = stop.Token,
        };
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new RobustnessEvaluator(t.Clip, defense, t.Vocabulary).Evaluate(data: cancelling, Enumerable.Range(0, 7).ToArray(), options, null, _ => batches++));
        Assert.Equal(1, cancelling.Reads);
        Assert.Equal(0, batches);
    }

    private sealed class CancellingDataset(IImageDataset inner, CancellationTokenSource stop) : IImageDataset
    {
        public int Reads { get; private set; }
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public int Count => inner.Count;
        public int Label(int index) => inner.Label(index);

        public Tensor Images(IReadOnlyList<int> indices, int size)
        {
            Reads++;
            stop.Cancel();
            return inner.Images(indices, size);
        }
    }
}
