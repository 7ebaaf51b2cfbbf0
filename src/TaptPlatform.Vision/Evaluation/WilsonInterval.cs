namespace TaptPlatform.Vision.Evaluation;

/// <summary>The Wilson score interval of a binomial proportion (95% by default, z = 1.959964).</summary>
public static class WilsonInterval
{
    public const double Z95 = 1.959963984540054;

    public static (double Lower, double Upper) Compute(int successes, int n, double z = Z95)
    {
        if (n <= 0) return (0, 1);
        if (successes < 0 || successes > n) throw new ArgumentOutOfRangeException(nameof(successes));
        var p = successes / (double)n;
        var z2 = z * z;
        var denominator = 1 + z2 / n;
        var centre = (p + z2 / (2 * n)) / denominator;
        var half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denominator;
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }
}
