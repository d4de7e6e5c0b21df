using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export.Llm;

/// <summary>
/// A causal decoder with a KV cache, built from a <see cref="LlmConfig"/> with Hugging Face's tensor names, so a
/// checkpoint's state dict loads into it by name. It is the reference the ONNX export is validated against.
/// Shapes: ids, positions (B, T) int64; attention mask (B, P + T) int64 (1 = real token); past/present K and V
/// (B, kv_heads, P(+T), head_dim); logits (B, T, vocab).
/// </summary>
public abstract class CausalDecoder(string name, LlmConfig config) : nn.Module(name)
{
    public LlmConfig Config { get; } = config;

    public abstract Tensor Forward(Tensor ids, Tensor attentionMask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past,
        out List<(Tensor K, Tensor V)> present);

    /// <summary>Module tensors a checkpoint may leave out (a tied head is the input embedding).</summary>
    public virtual bool IsDerived(string name) => false;

    /// <summary>Checkpoint names that carry nothing the module needs.</summary>
    public virtual bool IsIgnorable(string name) => false;

    /// <summary>Checkpoint name → module name (identity unless an architecture documents otherwise).</summary>
    public virtual string Rename(string name) => name;

    public static CausalDecoder Create(LlmConfig c) => c.Architecture == LlmArchitecture.Gpt2 ? new Gpt2LmHead(c) : new LlamaForCausalLm(c);

    /// <summary>The bool mask (B, 1, T, S) the ONNX graph uses: key ≤ query, and real or the query itself.</summary>
    public static Tensor Mask(Tensor attentionMask, long t)
    {
        long s = attentionMask.shape[1];
        var key = arange(s).view(1, s);
        var query = arange(s - t, s).view(t, 1);
        var causal = key.le(query);
        var self = key.eq(query);
        var valid = attentionMask.to(ScalarType.Bool).view(attentionMask.shape[0], 1, 1, s);
        return valid.logical_or(self).logical_and(causal);
    }

    /// <summary>softmax(q kᵀ/√d, masked) v with each KV head serving heads/kvHeads query heads; (B, T, H·Dh).</summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor mask, int heads, int kvHeads, int headDim)
    {
        int rep = heads / kvHeads;
        if (rep > 1)
        {
            k = k.repeat_interleave(rep, 1);
            v = v.repeat_interleave(rep, 1);
        }
        var scores = q.matmul(k.transpose(2, 3)).mul(1.0 / Math.Sqrt(headDim)).masked_fill(mask.logical_not(), float.NegativeInfinity);
        var y = scores.softmax(-1).matmul(v);                         // (B, H, T, Dh)
        return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], heads * headDim);
    }

    public static Tensor SplitHeads(Tensor x, int heads, int headDim) => x.view(x.shape[0], x.shape[1], heads, headDim).transpose(1, 2);
}

/// <summary>Hugging Face's Conv1D: y = x W + b with W stored (in, out) — GPT-2's projections.</summary>
public sealed class HfConv1D : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    public OnnxValue[] ExportOnnx(ExportContext ctx, OnnxValue[] x) => [ctx.Add(ctx.MatMul(x[0], ctx.Weight("weight", weight)), ctx.Weight("bias", bias))];

    public HfConv1D(long inFeatures, long outFeatures) : base(nameof(HfConv1D))
    {
        weight = nn.Parameter(randn(inFeatures, outFeatures) * 0.02);
        bias = nn.Parameter(zeros(outFeatures));
        RegisterComponents();
    }

    public Parameter weight;
    public Parameter bias;

    public override Tensor forward(Tensor x) => x.matmul(weight).add(bias);
}

/// <summary>Llama's RMSNorm: x / √(mean(x²) + eps) · w.</summary>
public sealed class HfRmsNorm : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    /// <summary>x / √(mean(x²) + eps) · w (ONNX Runtime fuses this pattern into SimplifiedLayerNormalization).</summary>
    public OnnxValue[] ExportOnnx(ExportContext ctx, OnnxValue[] x)
    {
        var variance = ctx.MeanLast(ctx.Mul(x[0], x[0]));
        return [ctx.Mul(ctx.Div(x[0], ctx.Op("Sqrt", ctx.Add(variance, ctx.F32((float)Eps)))), ctx.Weight("weight", weight))];
    }

    public HfRmsNorm(long dim, double eps) : base(nameof(HfRmsNorm))
    {
        Eps = eps;
        weight = nn.Parameter(ones(dim));
        RegisterComponents();
    }

    public double Eps { get; }
    public Parameter weight;

    public override Tensor forward(Tensor x) => x.mul(x.pow(2).mean([-1], keepdim: true).add(Eps).rsqrt()).mul(weight);
}

// ---------------------------------------------------------------- GPT-2

public sealed class Gpt2Attention : nn.Module
{
    public Gpt2Attention(LlmConfig c) : base(nameof(Gpt2Attention))
    {
        c_attn = new HfConv1D(c.Hidden, 3 * c.Hidden);
        c_proj = new HfConv1D(c.Hidden, c.Hidden);
        RegisterComponents();
    }

    public HfConv1D c_attn, c_proj;
}

public sealed class Gpt2Mlp : nn.Module
{
    public Gpt2Mlp(LlmConfig c) : base(nameof(Gpt2Mlp))
    {
        c_fc = new HfConv1D(c.Hidden, c.Intermediate);
        c_proj = new HfConv1D(c.Intermediate, c.Hidden);
        RegisterComponents();
    }

    public HfConv1D c_fc, c_proj;
}

public sealed class Gpt2Block : nn.Module
{
    public Gpt2Block(LlmConfig c) : base(nameof(Gpt2Block))
    {
        ln_1 = nn.LayerNorm(c.Hidden, c.NormEps);
        attn = new Gpt2Attention(c);
        ln_2 = nn.LayerNorm(c.Hidden, c.NormEps);
        mlp = new Gpt2Mlp(c);
        RegisterComponents();
    }

    public LayerNorm ln_1, ln_2;
    public Gpt2Attention attn;
    public Gpt2Mlp mlp;
}

public sealed class Gpt2Body : nn.Module
{
    public Gpt2Body(LlmConfig c) : base(nameof(Gpt2Body))
    {
        wte = nn.Embedding(c.VocabSize, c.Hidden);
        wpe = nn.Embedding(c.MaxPositions, c.Hidden);
        h = nn.ModuleList(Enumerable.Range(0, c.Layers).Select(_ => new Gpt2Block(c)).ToArray());
        ln_f = nn.LayerNorm(c.Hidden, c.NormEps);
        RegisterComponents();
    }

    public Embedding wte, wpe;
    public ModuleList<Gpt2Block> h;
    public LayerNorm ln_f;
}

/// <summary>
/// GPT2LMHeadModel's names: <c>transformer.wte|wpe|h.{i}.(ln_1|attn.c_attn|attn.c_proj|ln_2|mlp.c_fc|mlp.c_proj)|ln_f</c>
/// and <c>lm_head.weight</c> (tied to <c>transformer.wte.weight</c>, so usually absent). A bare GPT2Model checkpoint
/// (names without <c>transformer.</c>) loads too; the precomputed causal-mask buffers <c>attn.bias</c> and
/// <c>attn.masked_bias</c> of older checkpoints are ignored.
/// </summary>
public sealed class Gpt2LmHead : CausalDecoder
{
    public Gpt2LmHead(LlmConfig c) : base(nameof(Gpt2LmHead), c)
    {
        transformer = new Gpt2Body(c);
        if (!c.TieWordEmbeddings) lm_head = nn.Linear(c.Hidden, c.VocabSize, hasBias: false);
        RegisterComponents();
    }

    public Gpt2Body transformer;
    public Linear? lm_head;

    public override bool IsIgnorable(string name) => name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
                                                     || (Config.TieWordEmbeddings && name == "lm_head.weight");

    public override string Rename(string name) => name.StartsWith("transformer.", StringComparison.Ordinal) || name.StartsWith("lm_head.", StringComparison.Ordinal) ? name : "transformer." + name;

    public Tensor HeadWeight => lm_head?.weight ?? transformer.wte.weight!;

    public override Tensor Forward(Tensor ids, Tensor attentionMask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past, out List<(Tensor K, Tensor V)> present)
    {
        var c = Config;
        var x = transformer.wte.forward(ids).add(transformer.wpe.forward(positions));
        var mask = Mask(attentionMask, ids.shape[1]);
        present = [];
        for (int i = 0; i < c.Layers; i++)
        {
            var b = transformer.h[i];
            var qkv = b.attn.c_attn.forward(b.ln_1.forward(x)).chunk(3, -1);
            var q = SplitHeads(qkv[0], c.Heads, c.HeadDim);
            var k = SplitHeads(qkv[1], c.Heads, c.HeadDim);
            var v = SplitHeads(qkv[2], c.Heads, c.HeadDim);
            if (past is not null) (k, v) = (cat([past[i].K, k], 2), cat([past[i].V, v], 2));
            present.Add((k, v));
            x = x.add(b.attn.c_proj.forward(Attend(q, k, v, mask, c.Heads, c.Heads, c.HeadDim)));
            var act = nn.functional.gelu(b.mlp.c_fc.forward(b.ln_2.forward(x)), c.GeluTanh ? GELU.Approximate.tanh : GELU.Approximate.none);
            x = x.add(b.mlp.c_proj.forward(act));
        }
        return transformer.ln_f.forward(x).matmul(HeadWeight.t());
    }
}

// ---------------------------------------------------------------- Llama

public sealed class LlamaAttention : nn.Module
{
    public LlamaAttention(LlmConfig c) : base(nameof(LlamaAttention))
    {
        q_proj = nn.Linear(c.Hidden, c.Heads * c.HeadDim, hasBias: c.AttentionBias);
        k_proj = nn.Linear(c.Hidden, c.KvHeads * c.HeadDim, hasBias: c.AttentionBias);
        v_proj = nn.Linear(c.Hidden, c.KvHeads * c.HeadDim, hasBias: c.AttentionBias);
        o_proj = nn.Linear(c.Heads * c.HeadDim, c.Hidden, hasBias: c.AttentionBias);
        RegisterComponents();
    }

    public Linear q_proj, k_proj, v_proj, o_proj;
}

public sealed class LlamaMlp : nn.Module
{
    public LlamaMlp(LlmConfig c) : base(nameof(LlamaMlp))
    {
        gate_proj = nn.Linear(c.Hidden, c.Intermediate, hasBias: c.MlpBias);
        up_proj = nn.Linear(c.Hidden, c.Intermediate, hasBias: c.MlpBias);
        down_proj = nn.Linear(c.Intermediate, c.Hidden, hasBias: c.MlpBias);
        RegisterComponents();
    }

    public Linear gate_proj, up_proj, down_proj;
}

public sealed class LlamaLayer : nn.Module
{
    public LlamaLayer(LlmConfig c) : base(nameof(LlamaLayer))
    {
        input_layernorm = new HfRmsNorm(c.Hidden, c.NormEps);
        self_attn = new LlamaAttention(c);
        post_attention_layernorm = new HfRmsNorm(c.Hidden, c.NormEps);
        mlp = new LlamaMlp(c);
        RegisterComponents();
    }

    public HfRmsNorm input_layernorm, post_attention_layernorm;
    public LlamaAttention self_attn;
    public LlamaMlp mlp;
}

public sealed class LlamaBody : nn.Module
{
    public LlamaBody(LlmConfig c) : base(nameof(LlamaBody))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.Hidden);
        layers = nn.ModuleList(Enumerable.Range(0, c.Layers).Select(_ => new LlamaLayer(c)).ToArray());
        norm = new HfRmsNorm(c.Hidden, c.NormEps);
        RegisterComponents();
    }

    public Embedding embed_tokens;
    public ModuleList<LlamaLayer> layers;
    public HfRmsNorm norm;
}

/// <summary>
/// LlamaForCausalLM's names: <c>model.embed_tokens</c>, <c>model.layers.{i}.(input_layernorm|self_attn.(q|k|v|o)_proj|
/// post_attention_layernorm|mlp.(gate|up|down)_proj)</c>, <c>model.norm</c>, <c>lm_head</c> (absent when tied).
/// The <c>rotary_emb.inv_freq</c> buffers some checkpoints carry are ignored (they follow from rope_theta).
/// </summary>
public sealed class LlamaForCausalLm : CausalDecoder
{
    public LlamaForCausalLm(LlmConfig c) : base(nameof(LlamaForCausalLm), c)
    {
        model = new LlamaBody(c);
        if (!c.TieWordEmbeddings) lm_head = nn.Linear(c.Hidden, c.VocabSize, hasBias: false);
        RegisterComponents();
    }

    public LlamaBody model;
    public Linear? lm_head;

    public override bool IsIgnorable(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
                                                     || (Config.TieWordEmbeddings && name == "lm_head.weight");

    public Tensor HeadWeight => lm_head?.weight ?? model.embed_tokens.weight!;

    /// <summary>cos/sin (B, 1, T, Dh) for positions (B, T): inverse frequencies θ^(−2i/Dh), duplicated [f, f].</summary>
    public static (Tensor Cos, Tensor Sin) Rotary(Tensor positions, int headDim, double theta)
    {
        var inv = tensor(Enumerable.Range(0, headDim / 2).Select(i => (float)Math.Pow(theta, -(i * 2.0) / headDim)).ToArray());
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1).mul(inv);          // (B, T, Dh/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                 // (B, 1, T, Dh)
        return (emb.cos(), emb.sin());
    }

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
    }

    public override Tensor Forward(Tensor ids, Tensor attentionMask, Tensor positions, IReadOnlyList<(Tensor K, Tensor V)>? past, out List<(Tensor K, Tensor V)> present)
    {
        var c = Config;
        var x = model.embed_tokens.forward(ids);
        var mask = Mask(attentionMask, ids.shape[1]);
        var (cos, sin) = Rotary(positions, c.HeadDim, c.RopeTheta);
        present = [];
        for (int i = 0; i < c.Layers; i++)
        {
            var l = model.layers[i];
            var h = l.input_layernorm.forward(x);
            var q = SplitHeads(l.self_attn.q_proj.forward(h), c.Heads, c.HeadDim);
            var k = SplitHeads(l.self_attn.k_proj.forward(h), c.KvHeads, c.HeadDim);
            var v = SplitHeads(l.self_attn.v_proj.forward(h), c.KvHeads, c.HeadDim);
            q = q.mul(cos).add(RotateHalf(q).mul(sin));
            k = k.mul(cos).add(RotateHalf(k).mul(sin));
            if (past is not null) (k, v) = (cat([past[i].K, k], 2), cat([past[i].V, v], 2));
            present.Add((k, v));
            x = x.add(l.self_attn.o_proj.forward(Attend(q, k, v, mask, c.Heads, c.KvHeads, c.HeadDim)));
            h = l.post_attention_layernorm.forward(x);
            x = x.add(l.mlp.down_proj.forward(nn.functional.silu(l.mlp.gate_proj.forward(h)).mul(l.mlp.up_proj.forward(h))));
        }
        return model.norm.forward(x).matmul(HeadWeight.t());
    }
}
