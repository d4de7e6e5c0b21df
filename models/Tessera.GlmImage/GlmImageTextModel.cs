using Tessera.Export.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>Attention of one AR layer: q/k/v with bias, o without (official names <c>self_attn.{q,k,v,o}_proj</c>).</summary>
public sealed class GlmImageTextAttention : nn.Module
{
    public GlmImageTextAttention(GlmImageTextConfig c) : base(nameof(GlmImageTextAttention))
    {
        q_proj = nn.Linear(c.Hidden, c.Heads * c.HeadDim, hasBias: c.AttentionBias);
        k_proj = nn.Linear(c.Hidden, c.KvHeads * c.HeadDim, hasBias: c.AttentionBias);
        v_proj = nn.Linear(c.Hidden, c.KvHeads * c.HeadDim, hasBias: c.AttentionBias);
        o_proj = nn.Linear(c.Heads * c.HeadDim, c.Hidden, hasBias: false);
        RegisterComponents();
    }

    public Linear q_proj, k_proj, v_proj, o_proj;
}

/// <summary>SwiGLU with the fused <c>gate_up_proj</c> (first half gate, second half up) and <c>down_proj</c>.</summary>
public sealed class GlmImageTextMlp : nn.Module
{
    public GlmImageTextMlp(GlmImageTextConfig c) : base(nameof(GlmImageTextMlp))
    {
        gate_up_proj = nn.Linear(c.Hidden, 2 * c.Intermediate, hasBias: false);
        down_proj = nn.Linear(c.Intermediate, c.Hidden, hasBias: false);
        RegisterComponents();
    }

    public Linear gate_up_proj, down_proj;
}

/// <summary>One decoder layer with GLM's four ("sandwich") RMSNorms.</summary>
public sealed class GlmImageTextLayer : nn.Module
{
    public GlmImageTextLayer(GlmImageTextConfig c) : base(nameof(GlmImageTextLayer))
    {
        input_layernorm = new HfRmsNorm(c.Hidden, c.RmsNormEps);
        self_attn = new GlmImageTextAttention(c);
        post_self_attn_layernorm = new HfRmsNorm(c.Hidden, c.RmsNormEps);
        post_attention_layernorm = new HfRmsNorm(c.Hidden, c.RmsNormEps);
        mlp = new GlmImageTextMlp(c);
        post_mlp_layernorm = new HfRmsNorm(c.Hidden, c.RmsNormEps);
        RegisterComponents();
    }

    public HfRmsNorm input_layernorm, post_self_attn_layernorm, post_attention_layernorm, post_mlp_layernorm;
    public GlmImageTextAttention self_attn;
    public GlmImageTextMlp mlp;
}

public sealed class GlmImageLanguageModel : nn.Module
{
    public GlmImageLanguageModel(GlmImageTextConfig c) : base(nameof(GlmImageLanguageModel))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.Hidden);
        layers = nn.ModuleList(Enumerable.Range(0, c.LayersBuilt).Select(_ => new GlmImageTextLayer(c)).ToArray());
        norm = new HfRmsNorm(c.Hidden, c.RmsNormEps);
        RegisterComponents();
    }

    public Embedding embed_tokens;
    public ModuleList<GlmImageTextLayer> layers;
    public HfRmsNorm norm;
}

public sealed class GlmImageInner : nn.Module
{
    public GlmImageInner(GlmImageTextConfig c) : base(nameof(GlmImageInner))
    {
        language_model = new GlmImageLanguageModel(c);
        RegisterComponents();
    }

    public GlmImageLanguageModel language_model;
}

/// <summary>
/// GLM-Image's AR text model (GlmImageForConditionalGeneration's text path) with the official tensor names:
/// <c>model.language_model.embed_tokens</c>, <c>model.language_model.layers.{i}.(input_layernorm | self_attn.(q|k|v|o)_proj |
/// post_self_attn_layernorm | post_attention_layernorm | mlp.gate_up_proj | mlp.down_proj | post_mlp_layernorm)</c>,
/// <c>model.language_model.norm</c>, <c>lm_head</c> (16512 vision tokens, untied).
/// Layer: h = x + post_self_attn_norm(attn(input_norm(x))); out = h + post_mlp_norm(mlp(post_attention_norm(h))).
/// Positions are M-RoPE (3, B, S) = (temporal, height, width): the first <c>RotaryDim</c> channels of each head rotate
/// in the rotate-half layout, with frequency k taking its position from the axis whose <c>mrope_section</c> chunk holds k.
/// Shapes: ids (B, S); attention mask (B, P + S) int64; positions (3, B, S); logits (B, S, 16512).
/// </summary>
public sealed class GlmImageTextModel : nn.Module
{
    public GlmImageTextModel(GlmImageTextConfig c) : base(nameof(GlmImageTextModel))
    {
        Config = c;
        model = new GlmImageInner(c);
        lm_head = nn.Linear(c.Hidden, c.VisionVocabSize, hasBias: false);
        RegisterComponents();
    }

    public GlmImageTextConfig Config { get; }
    public GlmImageInner model;
    public Linear lm_head;

    /// <summary>Frequency k's axis: 0 for the first section, 1 for the second, 2 for the third.</summary>
    public static int[] FrequencyAxes(int[] sections) => sections.SelectMany((n, axis) => Enumerable.Repeat(axis, n)).ToArray();

    /// <summary>cos/sin (B, 1, S, R) from positions (3, B, S).</summary>
    public static (Tensor Cos, Tensor Sin) Rotary(Tensor positions, GlmImageTextConfig c)
    {
        int half = c.RotaryDim / 2;
        var inv = tensor(Enumerable.Range(0, half).Select(i => (float)Math.Pow(c.RopeTheta, -(i * 2.0) / c.RotaryDim)).ToArray());
        var perAxis = positions.to(ScalarType.Float32).unsqueeze(-1).mul(inv);          // (3, B, S, R/2)
        var chunks = new List<Tensor>();
        for (int k = 0, start = 0; k < c.MropeSection.Length; start += c.MropeSection[k], k++)
            chunks.Add(perAxis[k].narrow(-1, start, c.MropeSection[k]));                    // (B, S, section)
        var freqs = cat(chunks.ToArray(), -1);                                             // (B, S, R/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                    // (B, 1, S, R)
        return (emb.cos(), emb.sin());
    }

    private static Tensor ApplyRotary(Tensor x, Tensor cos, Tensor sin, int rotaryDim)
    {
        var rot = x.narrow(-1, 0, rotaryDim);
        var pass = x.narrow(-1, rotaryDim, x.shape[^1] - rotaryDim);
        long half = rotaryDim / 2;
        var rotated = cat([rot.narrow(-1, half, half).neg(), rot.narrow(-1, 0, half)], -1);
        return cat([rot.mul(cos).add(rotated.mul(sin)), pass], -1);
    }

    public Tensor Forward(Tensor ids, Tensor attentionMask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past, out List<(Tensor K, Tensor V)> present)
    {
        var c = Config;
        var lm = model.language_model;
        var x = lm.embed_tokens.forward(ids);
        var mask = CausalDecoder.Mask(attentionMask, ids.shape[1]);
        var (cos, sin) = Rotary(positions, c);
        present = [];
        for (int i = 0; i < lm.layers.Count; i++)
        {
            var l = lm.layers[i];
            var h = l.input_layernorm.forward(x);
            var q = CausalDecoder.SplitHeads(l.self_attn.q_proj.forward(h), c.Heads, c.HeadDim);
            var k = CausalDecoder.SplitHeads(l.self_attn.k_proj.forward(h), c.KvHeads, c.HeadDim);
            var v = CausalDecoder.SplitHeads(l.self_attn.v_proj.forward(h), c.KvHeads, c.HeadDim);
            q = ApplyRotary(q, cos, sin, c.RotaryDim);
            k = ApplyRotary(k, cos, sin, c.RotaryDim);
            if (past is not null) (k, v) = (cat([past[i].K, k], 2), cat([past[i].V, v], 2));
            present.Add((k, v));
            var attn = l.self_attn.o_proj.forward(CausalDecoder.Attend(q, k, v, mask, c.Heads, c.KvHeads, c.HeadDim));
            x = x.add(l.post_self_attn_layernorm.forward(attn));
            var gu = l.mlp.gate_up_proj.forward(l.post_attention_layernorm.forward(x)).chunk(2, -1);
            x = x.add(l.post_mlp_layernorm.forward(l.mlp.down_proj.forward(nn.functional.silu(gu[0]).mul(gu[1]))));
        }
        return lm_head.forward(lm.norm.forward(x));
    }
}
