namespace TaptPlatform.Vision.Tests;

/// <summary>The project's tensor code passes TorchSharp only Scalars something holds (see <see cref="HeldScalars"/>).</summary>
public sealed class HeldScalarsTests
{
    [Theory]
    [InlineData("src/TaptPlatform.Vision", "TaptPlatform.Vision", false, "")]
    [InlineData("src/TaptPlatform.Cli", "tapt", true, "")]
    [InlineData("tests/TaptPlatform.Vision.Tests", "TaptPlatform.Vision.Tests", false, " global using Xunit;")]
    public void No_tensor_operation_is_given_a_scalar_nothing_holds(string project, string assemblyName, bool executable, string usings)
    {
        var root = Path.Combine(RepositoryRoot(), project);
        var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f => (Path.GetRelativePath(root, f), File.ReadAllText(f)));
        var findings = HeldScalarCheck.Check(files, assemblyName, executable, usings);
        Assert.True(findings.Count == 0, $"{findings.Count} unheld scalars:\n" + string.Join('\n', findings));
    }

    [Fact]
    public void The_check_finds_each_kind_of_unheld_scalar_and_passes_held_ones()
    {
        const string code = """
            using TorchSharp;
            using static TorchSharp.torch;
            using TaptPlatform.Vision;
            static class Sample
            {
                static Tensor Unheld(Tensor a, Tensor b, double eps)
                {
                    var x = a.mul(eps);            // implicit conversion
                    var y = a * 2.0;               // operator with a number
                    var z = a + b;                 // alpha of tensor addition
                    var w = a.add_(b);             // alpha of add_
                    var v = HeldScalars.One - a;   // -a + 1, its alpha made inside
                    return x.clamp(0, 1) + HeldScalars.Zero;   // two conversions, an addition
                }
                static Tensor Held(Tensor a, Tensor b, double eps)
                {
                    using var e = eps.ToScalar();
                    var x = a.mul(e) * e;
                    var z = a.Plus(b).add(b, HeldScalars.One) - b;
                    return x.clamp(HeldScalars.Zero, HeldScalars.One).sub(z);
                }
            }
            """;
        var findings = HeldScalarCheck.Check([("Sample.cs", code)]);
        Assert.Equal([8, 9, 10, 11, 12, 13, 13, 13], findings.Select(f => f.Line).Order());
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TaptPlatform.sln"))) return d.FullName;
        throw new InvalidOperationException("TaptPlatform.sln not found above " + AppContext.BaseDirectory);
    }
}
