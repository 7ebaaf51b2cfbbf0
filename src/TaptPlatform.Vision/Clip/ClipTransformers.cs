using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TaptPlatform.Vision.Clip;

#pragma warning disable IDE1006 // snake_case fields are the checkpoint's parameter names

/// <summary>CLIPVisionTransformer with deep visual prompt hooks (VPT-deep, as MaPLe appends them).</summary>
public sealed class ClipVisionTransformer : nn.Module
{
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm, post_layernorm;
    private readonly ClipEncoder encoder;

    public ClipVisionTransformer(ClipVisionConfig c) : base(nameof(ClipVisionTransformer))
    {
        Config = c;
        embeddings = new ClipVisionEmbeddings(c);
        pre_layrnorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        encoder = new ClipEncoder(c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.HiddenAct, c.LayerNormEps);
        post_layernorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public ClipVisionConfig Config { get; }

    /// <summary>
    /// Pooled output (post_layernorm of the class token). Prompt tokens are appended after the patch
    /// tokens before pre_layrnorm and replaced before deeper blocks. If <paramref name="blockInputs"/>
    /// is given, receives the input of every encoder block ([B, tokens, D], prompts included), up to
    /// <paramref name="captureLayers"/> blocks.
    /// </summary>
    public Tensor Forward(Tensor normalisedPixels, PromptTokens? prompts = null, IList<Tensor>? blockInputs = null, int captureLayers = int.MaxValue)
    {
        var batch = normalisedPixels.shape[0];
        var x = embeddings.Forward(normalisedPixels);
        if (prompts is not null)
        {
            using var p = PromptTokens.ForBatch(prompts.At(0)!, batch);
            var withPrompts = cat([x, p], 1);
            x.Dispose();
            x = withPrompts;
        }
        var h = pre_layrnorm.forward(x);
        x.Dispose();
        for (var i = 0; i < encoder.Count; i++)
        {
            if (i > 0 && prompts?.At(i) is Tensor deep)
            {
                using var p = PromptTokens.ForBatch(deep, batch);
                using var keep = h.narrow(1, 0, h.shape[1] - prompts.Count);
                var replaced = cat([keep, p], 1);
                h.Dispose();
                h = replaced;
            }
            if (blockInputs is not null && i < captureLayers) blockInputs.Add(h.alias());
            var next = encoder[i].Forward(h, causal: false);
            h.Dispose();
            h = next;
        }
        using var cls = h.select(1, 0);
        h.Dispose();
        return post_layernorm.forward(cls);
    }
}

/// <summary>CLIPTextTransformer with deep text prompt hooks (context tokens after the start token).</summary>
public sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ClipTextConfig c) : base(nameof(ClipTextTransformer))
    {
        Config = c;
        embeddings = new ClipTextEmbeddings(c);
        encoder = new ClipEncoder(c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.HiddenAct, c.LayerNormEps);
        final_layer_norm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public ClipTextConfig Config { get; }

    public Tensor TokenEmbeddings(Tensor ids) => embeddings.TokenEmbeddings(ids);

    /// <summary>Pooled output at the end-of-text token (transformers' rule for <c>eos_token_id</c>).</summary>
    public Tensor Forward(Tensor ids, PromptTokens? prompts = null)
    {
        var batch = ids.shape[0];
        var tok = embeddings.TokenEmbeddings(ids);
        if (prompts is not null) tok = ReplaceContext(tok, prompts.At(0)!, prompts.Count, batch);
        var h = embeddings.AddPositions(tok);
        tok.Dispose();
        for (var i = 0; i < encoder.Count; i++)
        {
            if (i > 0 && prompts?.At(i) is Tensor deep) h = ReplaceContext(h, deep, prompts.Count, batch);
            var next = encoder[i].Forward(h, causal: true);
            h.Dispose();
            h = next;
        }
        using var normed = final_layer_norm.forward(h);
        h.Dispose();
        using var eos = EosIndex(ids);
        using var count = batch.ToScalar();
        using var rows = arange(count, dtype: ScalarType.Int64, device: ids.device);
        return normed.index([rows, eos]);
    }

    /// <summary>Position of the pooled token: legacy configs (eos_token_id == 2) take argmax of the ids.</summary>
    public Tensor EosIndex(Tensor ids)
    {
        if (Config.EosTokenId == 2) return ids.argmax(-1);
        using var eosId = Config.EosTokenId.ToScalar();
        using var isEos = ids.eq(eosId).to(ScalarType.Int32);
        return isEos.argmax(-1);
    }

    private static Tensor ReplaceContext(Tensor h, Tensor prompt, int n, long batch)
    {
        using var p = PromptTokens.ForBatch(prompt, batch);
        using var head = h.narrow(1, 0, 1);
        using var tail = h.narrow(1, 1 + n, h.shape[1] - 1 - n);
        var result = cat([head, p, tail], 1);
        h.Dispose();
        return result;
    }
}
#pragma warning restore IDE1006
