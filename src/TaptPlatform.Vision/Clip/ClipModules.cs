using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TaptPlatform.Vision.HeldScalars;

namespace TaptPlatform.Vision.Clip;

// Module and field names mirror transformers' modeling_clip.py so that state_dict keys equal the
// checkpoint's parameter names (e.g. "vision_model.encoder.layers.3.self_attn.q_proj.weight").
#pragma warning disable IDE1006 // snake_case fields are the checkpoint's parameter names

/// <summary>Multi-head self-attention with q/k/v/out projections and biases (CLIPAttention).</summary>
public sealed class ClipAttention : nn.Module
{
    private readonly int _heads;
    private readonly Linear q_proj, k_proj, v_proj, out_proj;

    public ClipAttention(int width, int heads) : base(nameof(ClipAttention))
    {
        _heads = heads;
        q_proj = nn.Linear(width, width);
        k_proj = nn.Linear(width, width);
        v_proj = nn.Linear(width, width);
        out_proj = nn.Linear(width, width);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, bool causal)
    {
        var (b, l, d) = (x.shape[0], x.shape[1], x.shape[2]);
        var hd = d / _heads;
        using var q = Heads(q_proj, x, b, l, hd);
        using var k = Heads(k_proj, x, b, l, hd);
        using var v = Heads(v_proj, x, b, l, hd);
        using var a = Attend(q, k, v, causal);
        using var byToken = a.transpose(1, 2);
        using var merged = byToken.reshape(b, l, d);
        return out_proj.forward(merged);
    }

    /// <summary>
    /// SDPA, which scales by head_dim^-0.5 as CLIPAttention does. libtorch's CPU kernel for bf16 is about 2.7× slower than
    /// its fp32 kernel on CLIP's short sequences (the products are too small for the bf16 units to pay for the conversions),
    /// so bf16 inputs on a CPU attend in fp32 and return bf16: the same result with less rounding, and cheaper.
    /// </summary>
    private static Tensor Attend(Tensor q, Tensor k, Tensor v, bool causal)
    {
        if (q.dtype != ScalarType.BFloat16 || q.device_type != DeviceType.CPU)
            return nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal);
        using var q32 = q.to(ScalarType.Float32);
        using var k32 = k.to(ScalarType.Float32);
        using var v32 = v.to(ScalarType.Float32);
        using var a = nn.functional.scaled_dot_product_attention(q32, k32, v32, is_casual: causal);
        return a.to(ScalarType.BFloat16);
    }

    /// <summary>[B, heads, L, head_dim] view of a projection; every intermediate handle is freed here, not by the caller's scope.</summary>
    private Tensor Heads(Linear projection, Tensor x, long b, long l, long hd)
    {
        using var y = projection.forward(x);
        using var split = y.view(b, l, _heads, hd);
        return split.transpose(1, 2);
    }
}

/// <summary>fc1 → activation → fc2 (CLIPMLP).</summary>
public sealed class ClipMlp : nn.Module
{
    private readonly Linear fc1, fc2;
    private readonly Func<Tensor, Tensor> _act;

    public ClipMlp(int width, int intermediate, string activation) : base(nameof(ClipMlp))
    {
        fc1 = nn.Linear(width, intermediate);
        fc2 = nn.Linear(intermediate, width);
        _act = ClipActivation.Get(activation);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var a = _act(h);
        return fc2.forward(a);
    }
}

/// <summary>Pre-LayerNorm transformer block (CLIPEncoderLayer).</summary>
public sealed class ClipEncoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1, layer_norm2;
    private readonly ClipMlp mlp;

    public ClipEncoderLayer(int width, int heads, int intermediate, string activation, double eps) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(width, heads);
        layer_norm1 = nn.LayerNorm(width, eps);
        mlp = new ClipMlp(width, intermediate, activation);
        layer_norm2 = nn.LayerNorm(width, eps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, bool causal)
    {
        using var n1 = layer_norm1.forward(x);
        using var att = self_attn.Forward(n1, causal);
        using var h = x.Plus(att);
        using var n2 = layer_norm2.forward(h);
        using var m = mlp.Forward(n2);
        return h.Plus(m);
    }
}

/// <summary>The stack of encoder layers (CLIPEncoder).</summary>
public sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(int count, int width, int heads, int intermediate, string activation, double eps) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>();
        for (var i = 0; i < count; i++) layers.Add(new ClipEncoderLayer(width, heads, intermediate, activation, eps));
        RegisterComponents();
    }

    public int Count => layers.Count;
    public ClipEncoderLayer this[int i] => layers[i];
}

/// <summary>Patch (bias-free conv), class token and learned positions (CLIPVisionEmbeddings).</summary>
public sealed class ClipVisionEmbeddings : nn.Module
{
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
    private readonly ClipVisionConfig _config;

    public ClipVisionEmbeddings(ClipVisionConfig c) : base(nameof(ClipVisionEmbeddings))
    {
        _config = c;
        class_embedding = nn.Parameter(randn(c.HiddenSize));
        patch_embedding = nn.Conv2d(c.NumChannels, c.HiddenSize, kernel_size: c.PatchSize, stride: c.PatchSize, bias: false);
        position_embedding = nn.Embedding(c.NumPositions, c.HiddenSize);
        RegisterComponents();
    }

    /// <param name="pixels">Normalised pixels [B, C, H, W] at the configured image size.</param>
    public Tensor Forward(Tensor pixels)
    {
        var b = pixels.shape[0];
        using var patches = patch_embedding.forward(pixels);            // [B, D, h, w]
        using var flat = patches.flatten(2);
        using var tokens = flat.transpose(1, 2);                       // [B, N, D]
        using var one = class_embedding.view(1, 1, -1);
        using var cls = one.expand(b, 1, -1);
        using var seq = cat([cls, tokens], 1);
        return seq.Plus(position_embedding.weight!);
    }
}

/// <summary>Token and learned position embeddings (CLIPTextEmbeddings).</summary>
public sealed class ClipTextEmbeddings : nn.Module
{
    private readonly Embedding token_embedding, position_embedding;

    public ClipTextEmbeddings(ClipTextConfig c) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor TokenEmbeddings(Tensor ids) => token_embedding.forward(ids);

    public Tensor AddPositions(Tensor tokenEmbeds)
    {
        var l = tokenEmbeds.shape[1];
        using var pos = position_embedding.weight!.narrow(0, 0, l);
        return tokenEmbeds.Plus(pos);
    }
}
#pragma warning restore IDE1006
