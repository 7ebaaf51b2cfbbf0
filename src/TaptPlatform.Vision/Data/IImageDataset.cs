using static TorchSharp.torch;

namespace TaptPlatform.Vision.Data;

/// <summary>A labelled image set that can hand out [n, 3, S, S] pixel batches in [0,1].</summary>
public interface IImageDataset
{
    IReadOnlyList<string> ClassNames { get; }
    int Count { get; }
    int Label(int index);
    Tensor Images(IReadOnlyList<int> indices, int size);
}

/// <summary>In-memory grayscale images (Fashion-MNIST) as an <see cref="IImageDataset"/>.</summary>
public sealed class GreyImageDataset(LabelledImages images) : IImageDataset
{
    public LabelledImages Source => images;
    public IReadOnlyList<string> ClassNames => images.ClassNames;
    public int Count => images.Count;
    public int Label(int index) => images.Labels[index];
    public Tensor Images(IReadOnlyList<int> indices, int size) => images.ToTensor(indices, size);
}

public static class DatasetSampling
{
    /// <summary>A deterministic sample of n indices (all, shuffled, when n ≥ count).</summary>
    public static int[] Sample(int count, int n, int seed)
    {
        var idx = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(idx);
        return idx[..Math.Min(n, count)];
    }

    /// <summary>Up to <paramref name="shots"/> indices per class, drawn deterministically.</summary>
    public static int[] PerClass(IImageDataset data, int shots, int seed)
    {
        var idx = Sample(data.Count, data.Count, seed);
        var taken = new int[data.ClassNames.Count];
        var result = new List<int>();
        foreach (var i in idx)
        {
            var l = data.Label(i);
            if (taken[l] < shots) { taken[l]++; result.Add(i); }
        }
        return [.. result];
    }
}
