using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace TaptPlatform.Vision.Tests;

/// <summary>
/// Finds where C# code hands TorchSharp a Scalar nothing holds (see <see cref="HeldScalars"/>): a number converted to
/// a Scalar implicitly, a tensor operator with a number operand (TorchSharp converts it inside), and tensor addition
/// (<c>a + b</c>, <c>s − t</c>, <c>add(b)</c>, <c>add_(b)</c>), whose alpha of 1 TorchSharp converts inside. Compiled with Roslyn against the assemblies this test runs with.
/// </summary>
public static class HeldScalarCheck
{
    /// <summary>Errors a compilation without the project's source generators makes (their partial methods have no body).</summary>
    private static readonly string[] GeneratorGaps = ["CS8795"];

    private const string ImplicitUsings =
        "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
        "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    public sealed record Finding(string File, int Line, string Why, string Code)
    {
        public override string ToString() => $"{File}:{Line}: {Why}: {Code}";
    }

    /// <summary>
    /// The findings in the given C# files, compiled together as the assembly <paramref name="assemblyName"/> (which is
    /// left out of the references), or an exception when they do not compile.
    /// </summary>
    public static IReadOnlyList<Finding> Check(IEnumerable<(string Path, string Text)> files, string assemblyName = "HeldScalarCheck", bool executable = false, string usings = "")
    {
        var options = new CSharpParseOptions(LanguageVersion.Preview);
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(f.Text, options, f.Path))
            .Append(CSharpSyntaxTree.ParseText(ImplicitUsings + usings, options, "GlobalUsings.cs")).ToList();
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileNameWithoutExtension(p) != assemblyName).Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create(assemblyName, trees, references,
            new CSharpCompilationOptions(executable ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error && !GeneratorGaps.Contains(d.Id)).ToList();
        if (errors.Count > 0) throw new InvalidOperationException("the code does not compile: " + string.Join("; ", errors.Take(5)));

        var scalar = compilation.GetTypeByMetadataName("TorchSharp.Scalar")!;
        var tensor = compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor")!;
        var findings = new List<Finding>();
        foreach (var tree in trees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var op in Operations(tree, model))
                if (Why(op, scalar, tensor) is { } why)
                    findings.Add(new Finding(tree.FilePath, tree.GetLineSpan(op.Syntax.Span).StartLinePosition.Line + 1, why, op.Syntax.ToString()));
        }
        return findings;
    }

    /// <summary>Every operation of the tree once (implicit conversions share their operand's syntax, so walk operations).</summary>
    private static IEnumerable<IOperation> Operations(SyntaxTree tree, SemanticModel model)
    {
        var seen = new HashSet<IOperation>();
        return tree.GetRoot().DescendantNodes()
            .Where(n => n is BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or ArrowExpressionClauseSyntax
                or LocalFunctionStatementSyntax or LambdaExpressionSyntax or VariableDeclaratorSyntax or ConstructorInitializerSyntax
                or PrimaryConstructorBaseTypeSyntax or GlobalStatementSyntax)
            .Select(n => model.GetOperation(n)).OfType<IOperation>()
            .SelectMany(o => o.DescendantsAndSelf()).Where(seen.Add);
    }

    private static string? Why(IOperation op, INamedTypeSymbol scalar, INamedTypeSymbol tensor)
    {
        static bool Is(ITypeSymbol? a, ITypeSymbol b) => SymbolEqualityComparer.Default.Equals(a, b);
        switch (op)
        {
            case IConversionOperation c when Is(c.Type, scalar) && c.OperatorMethod is not null:
                return "a number made into a Scalar nothing holds";
            case IBinaryOperation b when b.OperatorMethod is { } m && Is(m.ContainingType, tensor):
                if (m.Parameters.Any(p => p.Type.SpecialType is SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Single or SpecialType.System_Double or SpecialType.System_Boolean))
                    return "a tensor operator with a number (made into a Scalar nothing holds)";
                // TorchSharp adds with an alpha of 1 it makes itself, and computes s − t as −t + s.
                if (b.OperatorKind == BinaryOperatorKind.Add) return "an addition (its alpha is a Scalar nothing holds)";
                if (b.OperatorKind == BinaryOperatorKind.Subtract && Is(m.Parameters[0].Type, scalar)) return "scalar − tensor (an addition whose alpha nothing holds)";
                return null;
            case IInvocationOperation i when i.TargetMethod.ContainingNamespace?.ToDisplayString().StartsWith("TorchSharp", StringComparison.Ordinal) == true:
                if (i.Arguments.Any(a => a.ArgumentKind == ArgumentKind.DefaultValue && Is(a.Parameter?.Type, scalar)))
                    return "a Scalar parameter left to its default";
                if (i.TargetMethod.Name is "add" or "add_" or "addcdiv" or "addcdiv_" && !i.TargetMethod.Parameters.Any(p => p.Name is "alpha" or "value"))
                    return $"{i.TargetMethod.Name} without alpha (TorchSharp makes one nothing holds)";
                return null;
            default:
                return null;
        }
    }
}
