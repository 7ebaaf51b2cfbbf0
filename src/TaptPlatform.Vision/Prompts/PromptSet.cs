using TorchSharp;
using TaptPlatform.Vision.Clip;
using TaptPlatform.Vision.Text;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Prompts;

/// <summary>
/// The learnable prompts of one design. Tensors are [n, D] for one prompt set, or [K, n, D] when K
/// images are tuned together (each slice is one image's prompts; Adam(W) is element-wise, so a stacked
/// set tuned on the summed loss updates every slice exactly as if it were alone).
/// </summary>
public sealed class PromptSet : IDisposable
{
    private PromptSet(PromptShape shape, List<Parameter> text, List<Parameter> visual, List<(Parameter W, Parameter B)> projections, int groups)
    {
        Shape = shape;
        Text = text;
        Visual = visual;
        Projections = projections;
        Groups = groups;
    }

    public PromptShape Shape { get; }
    public IReadOnlyList<Parameter> Text { get; }
    public IReadOnlyList<Parameter> Visual { get; }
    public IReadOnlyList<(Parameter W, Parameter B)> Projections { get; }

    /// <summary>0 for a single set ([n, D] tensors), K for a stacked set ([K, n, D]).</summary>
    public int Groups { get; }

    public IEnumerable<Parameter> Parameters() =>
        Text.Concat(Visual).Concat(Projections.SelectMany(p => new[] { p.W, p.B }));

    /// <summary>
    /// The method note's initialisation: input-layer text tokens from the word embeddings of "a photo",
    /// other tokens N(0, 0.02); joint projections like nn.Linear.
    /// </summary>
    public static PromptSet Initialise(PromptShape shape, ClipModel model, ClipTokenizer tokenizer, Generator? generator = null)
    {
        var n = shape.TokensPerLayer;
        var dt = model.Config.Text.HiddenSize;
        var dv = model.Config.Vision.HiddenSize;
        // torch.normal(0, 0.02) as TorchSharp computes it (randn · std + mean), with the scalar held alive through the call:
        // TorchSharp's implicit scalars can be finalized while libtorch still reads them.
        Tensor Normal(int d)
        {
            using var std = 0.02.ToScalar();
            return randn([n, d], generator: generator).mul_(std);
        }
        var text = new List<Parameter>();
        var visual = new List<Parameter>();
        var proj = new List<(Parameter, Parameter)>();
        using (no_grad())
        {
            for (var l = 0; l < shape.TextDepth; l++)
            {
                Tensor init = Normal(dt);
                if (l == 0)
                {
                    var ids = tokenizer.Encode("a photo");
                    var context = ids[1..^1];
                    if (context.Length == n)
                    {
                        init.Dispose();
                        using var idTensor = tensor(context.Select(i => (long)i).ToArray()).unsqueeze(0);
                        using var emb = model.TextModel.TokenEmbeddings(idTensor);
                        init = emb.squeeze(0).clone();
                    }
                }
                text.Add(new Parameter(init, requires_grad: true));
            }
            if (shape.Design == PromptDesign.VLJ)
            {
                var limit = 1.0 / Math.Sqrt(dt);
                using var bound = limit.ToScalar();
                using var width = (2 * limit).ToScalar();
                for (var l = 0; l < shape.VisionDepth; l++)
                {
                    var w = rand([dv, dt], generator: generator).mul_(width).sub_(bound);
                    var b = rand([dv], generator: generator).mul_(width).sub_(bound);
                    proj.Add((new Parameter(w, true), new Parameter(b, true)));
                }
            }
            else
            {
                for (var l = 0; l < shape.VisionDepth; l++) visual.Add(new Parameter(Normal(dv), requires_grad: true));
            }
        }
        return new PromptSet(shape, text, visual, proj, 0);
    }

    /// <summary>Prompt tokens for the vision tower (VLJ: projected from the text tokens).</summary>
    public PromptTokens VisionTokens()
    {
        if (Shape.Design != PromptDesign.VLJ) return new PromptTokens(Visual.Cast<Tensor?>().ToList());
        var layers = new List<Tensor?>();
        for (var l = 0; l < Projections.Count; l++)
        {
            var (w, b) = Projections[l];
            // [.., n, Dt] @ [Dt, Dv] + b, per group when stacked.
            layers.Add(Groups == 0 ? nn.functional.linear(Text[l], w, b) : Text[l].matmul(w.transpose(-1, -2)).Plus(b.unsqueeze(1)));
        }
        return new PromptTokens(layers);
    }

    /// <summary>Prompt tokens for the text tower, or null for the V design.</summary>
    public PromptTokens? TextTokens() => Shape.HasText ? new PromptTokens(Text.Cast<Tensor?>().ToList()) : null;

    /// <summary>Named tensors for artifacts ("text.0", "visual.3", "proj.2.weight", ...).</summary>
    public Dictionary<string, Tensor> State()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (var l = 0; l < Text.Count; l++) d[$"text.{l}"] = Text[l];
        for (var l = 0; l < Visual.Count; l++) d[$"visual.{l}"] = Visual[l];
        for (var l = 0; l < Projections.Count; l++)
        {
            d[$"proj.{l}.weight"] = Projections[l].W;
            d[$"proj.{l}.bias"] = Projections[l].B;
        }
        return d;
    }

    /// <summary>Rebuilds a single prompt set from named tensors (shapes checked against the model).</summary>
    public static PromptSet FromState(PromptShape shape, IReadOnlyDictionary<string, Tensor> state, ClipModel model)
    {
        var n = shape.TokensPerLayer;
        var dt = model.Config.Text.HiddenSize;
        var dv = model.Config.Vision.HiddenSize;
        Parameter Take(string name, long[] expected)
        {
            if (!state.TryGetValue(name, out var t)) throw new FormatException($"prompt tensor '{name}' is missing");
            if (!t.shape.SequenceEqual(expected))
                throw new FormatException($"prompt tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", expected)}]");
            return new Parameter(t.detach().clone(), requires_grad: true);
        }
        var text = Enumerable.Range(0, shape.TextDepth).Select(l => Take($"text.{l}", [n, dt])).ToList();
        var visual = shape.Design == PromptDesign.VLJ ? [] : Enumerable.Range(0, shape.VisionDepth).Select(l => Take($"visual.{l}", [n, dv])).ToList();
        var proj = shape.Design != PromptDesign.VLJ ? [] : Enumerable.Range(0, shape.VisionDepth)
            .Select(l => (Take($"proj.{l}.weight", [dv, dt]), Take($"proj.{l}.bias", [dv]))).ToList();
        return new PromptSet(shape, text, visual, proj, 0);
    }

    /// <summary>K independent copies stacked into [K, ...] leaf parameters (for tuning K images together).</summary>
    public PromptSet Stack(int k)
    {
        if (Groups != 0) throw new InvalidOperationException("already stacked");
        using var _ = no_grad();
        Parameter Rep(Tensor t) => new(t.detach().unsqueeze(0).expand([k, .. t.shape]).clone(), requires_grad: true);
        return new PromptSet(Shape, Text.Select(Rep).ToList(), Visual.Select(Rep).ToList(),
            Projections.Select(p => (Rep(p.W), Rep(p.B))).ToList(), k);
    }

    /// <summary>Slice g of a stacked set, detached, as a single set.</summary>
    public PromptSet Slice(int g)
    {
        if (Groups == 0) throw new InvalidOperationException("not stacked");
        using var _ = no_grad();
        Parameter S(Tensor t) => new(t[g].detach().clone(), requires_grad: false);
        return new PromptSet(Shape, Text.Select(S).ToList(), Visual.Select(S).ToList(), Projections.Select(p => (S(p.W), S(p.B))).ToList(), 0);
    }

    /// <summary>Overwrites these prompts with another set's values (the per-image reset).</summary>
    public void CopyFrom(PromptSet source)
    {
        using var _ = no_grad();
        foreach (var (dst, src) in Parameters().Zip(source.Parameters()))
        {
            if (Groups == source.Groups) dst.copy_(src);
            else dst.copy_(src.unsqueeze(0).expand_as(dst));
        }
    }

    public PromptSet Clone()
    {
        using var _ = no_grad();
        Parameter C(Parameter t) => new(t.detach().clone(), requires_grad: t.requires_grad);
        return new PromptSet(Shape, Text.Select(C).ToList(), Visual.Select(C).ToList(), Projections.Select(p => (C(p.W), C(p.B))).ToList(), Groups);
    }

    public void SetRequiresGrad(bool value)
    {
        foreach (var p in Parameters()) p.requires_grad = value;
    }

    public void Dispose()
    {
        foreach (var p in Parameters()) p.Dispose();
    }
}
