using Tessera.Export.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>
/// T5 self-attention (<c>SelfAttention.{q,k,v,o}</c>, no biases anywhere in T5). Only block 0 owns
/// <c>relative_attention_bias</c> (buckets × heads); every layer adds that same bias.
/// </summary>
public sealed class T5SelfAttention : nn.Module
{
    public T5SelfAttention(GlmImageT5Config c, bool hasRelativeBias) : base(nameof(T5SelfAttention))
    {
        q = nn.Linear(c.DModel, c.Inner, hasBias: false);
        k = nn.Linear(c.DModel, c.Inner, hasBias: false);
        v = nn.Linear(c.DModel, c.Inner, hasBias: false);
        o = nn.Linear(c.Inner, c.DModel, hasBias: false);
        if (hasRelativeBias) relative_attention_bias = nn.Embedding(c.RelativeBuckets, c.Heads);
        RegisterComponents();
    }

    public Linear q, k, v, o;
    public Embedding? relative_attention_bias;
}

/// <summary><c>layer.0</c>: pre-norm self-attention (<c>SelfAttention</c>, <c>layer_norm</c>).</summary>
public sealed class T5LayerSelfAttention : nn.Module
{
    public T5LayerSelfAttention(GlmImageT5Config c, bool hasRelativeBias) : base(nameof(T5LayerSelfAttention))
    {
        SelfAttention = new T5SelfAttention(c, hasRelativeBias);
        layer_norm = new HfRmsNorm(c.DModel, c.LayerNormEps);
        RegisterComponents();
    }

    public T5SelfAttention SelfAttention;
    public HfRmsNorm layer_norm;
}

/// <summary>Gated-GELU feed-forward: <c>wo(gelu_tanh(wi_0 x) ⊙ wi_1 x)</c>, no biases.</summary>
public sealed class T5DenseGatedGelu : nn.Module
{
    public T5DenseGatedGelu(GlmImageT5Config c) : base(nameof(T5DenseGatedGelu))
    {
        wi_0 = nn.Linear(c.DModel, c.DFf, hasBias: false);
        wi_1 = nn.Linear(c.DModel, c.DFf, hasBias: false);
        wo = nn.Linear(c.DFf, c.DModel, hasBias: false);
        RegisterComponents();
    }

    public Linear wi_0, wi_1, wo;

    public Tensor Forward(Tensor x) => wo.forward(nn.functional.gelu(wi_0.forward(x), GELU.Approximate.tanh).mul(wi_1.forward(x)));
}

/// <summary><c>layer.1</c>: pre-norm feed-forward (<c>DenseReluDense</c>, <c>layer_norm</c>; HF keeps the name for the gated variant).</summary>
public sealed class T5LayerFeedForward : nn.Module
{
    public T5LayerFeedForward(GlmImageT5Config c) : base(nameof(T5LayerFeedForward))
    {
        DenseReluDense = new T5DenseGatedGelu(c);
        layer_norm = new HfRmsNorm(c.DModel, c.LayerNormEps);
        RegisterComponents();
    }

    public T5DenseGatedGelu DenseReluDense;
    public HfRmsNorm layer_norm;
}

/// <summary>One encoder block: <c>layer.0</c> attention, <c>layer.1</c> feed-forward.</summary>
public sealed class T5Block : nn.Module
{
    public T5Block(GlmImageT5Config c, bool hasRelativeBias) : base(nameof(T5Block))
    {
        layer = nn.ModuleList<nn.Module>(new T5LayerSelfAttention(c, hasRelativeBias), new T5LayerFeedForward(c));
        RegisterComponents();
    }

    public ModuleList<nn.Module> layer;
    public T5LayerSelfAttention Attention => (T5LayerSelfAttention)layer[0];
    public T5LayerFeedForward FeedForward => (T5LayerFeedForward)layer[1];
}

/// <summary>The encoder stack: <c>embed_tokens</c> (the same parameter as the root's <c>shared</c>), <c>block.{i}</c>, <c>final_layer_norm</c>.</summary>
public sealed class T5EncoderStack : nn.Module
{
    public T5EncoderStack(GlmImageT5Config c, Embedding shared) : base(nameof(T5EncoderStack))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.DModel);
        embed_tokens.weight = shared.weight!; // tied, as T5 ties them: one tensor under both names
        block = nn.ModuleList(Enumerable.Range(0, c.LayersBuilt).Select(i => new T5Block(c, hasRelativeBias: i == 0)).ToArray());
        final_layer_norm = new HfRmsNorm(c.DModel, c.LayerNormEps);
        RegisterComponents();
    }

    public Embedding embed_tokens;
    public ModuleList<T5Block> block;
    public HfRmsNorm final_layer_norm;
}

/// <summary>
/// GLM-Image's glyph encoder: transformers' T5EncoderModel as ByT5 uses it, with the official tensor names
/// (<c>shared.weight</c>; <c>encoder.embed_tokens.weight</c> tied to it; <c>encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}</c>,
/// <c>encoder.block.0.layer.0.SelfAttention.relative_attention_bias</c>, <c>encoder.block.{i}.layer.{0,1}.layer_norm</c>,
/// <c>encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}</c>, <c>encoder.final_layer_norm</c>).
/// Per block x += Attn(RMS(x)); x += FF(RMS(x)); then the final RMS. Attention scores are not scaled by 1/√d_kv;
/// the bidirectional relative-position bias of block 0 and the padding mask are added before the softmax.
/// Shapes: input ids and attention mask (B, L) int64 → last hidden state (B, L, d_model).
/// </summary>
public sealed class GlmImageT5Encoder : nn.Module
{
    public GlmImageT5Encoder(GlmImageT5Config c) : base(nameof(GlmImageT5Encoder))
    {
        Config = c;
        shared = nn.Embedding(c.VocabSize, c.DModel);
        encoder = new T5EncoderStack(c, shared);
        RegisterComponents();
    }

    public const string TiedName = "encoder.embed_tokens.weight";

    public GlmImageT5Config Config { get; }
    public Embedding shared;
    public T5EncoderStack encoder;

    /// <summary>
    /// T5's bidirectional bucket (int64, same shape) of each relative position key − query: half of the buckets per
    /// direction (positive distances offset by that half); within a direction the first half of the buckets are the
    /// exact distances 0.., the rest logarithmic up to <paramref name="maxDistance"/>, then saturated. Computed in
    /// float32 as transformers does, so that the boundaries (distances 16, 32, 64 for ByT5) fall the same way.
    /// </summary>
    public static Tensor RelativeBucket(Tensor relative, int numBuckets, int maxDistance)
    {
        int half = numBuckets / 2, maxExact = half / 2;
        var n = relative.abs();
        // Distances below maxExact take the exact branch; clamping them keeps the log finite without changing a result.
        var scaled = n.clamp_min(maxExact).to(ScalarType.Float32).div(maxExact).log().div(Math.Log((double)maxDistance / maxExact)).mul(half - maxExact);
        var large = scaled.to(ScalarType.Int64).add(maxExact).clamp_max(half - 1);
        return where(n.lt(maxExact), n, large).add(relative.gt(0).to(ScalarType.Int64).mul(half));
    }

    /// <summary>The shared position bias (1, H, L, L) for a sequence of <paramref name="length"/>.</summary>
    public Tensor PositionBias(long length)
    {
        var pos = arange(length, dtype: ScalarType.Int64);
        var buckets = RelativeBucket(pos.unsqueeze(0).sub(pos.unsqueeze(1)), Config.RelativeBuckets, Config.RelativeMaxDistance); // (L, L), key − query
        return encoder.block[0].Attention.SelfAttention.relative_attention_bias!.forward(buckets).permute(2, 0, 1).unsqueeze(0);
    }

    public Tensor Forward(Tensor inputIds, Tensor attentionMask)
    {
        var c = Config;
        long b = inputIds.shape[0], l = inputIds.shape[1];
        var x = encoder.embed_tokens.forward(inputIds);                                                           // (B, L, D)
        // Padding keys get float32's lowest value added (as transformers does), so a fully padded row stays finite.
        var keyMask = where(attentionMask.to(ScalarType.Bool), 0f, float.MinValue).view(b, 1, 1, l);
        var bias = PositionBias(l).add(keyMask);                                                                  // (B, H, L, L)
        foreach (var block in encoder.block)
        {
            var sa = block.Attention.SelfAttention;
            var h = block.Attention.layer_norm.forward(x);
            Tensor Heads(Linear proj) => proj.forward(h).view(b, l, c.Heads, c.DKv).transpose(1, 2);               // (B, H, L, Dkv)
            var scores = Heads(sa.q).matmul(Heads(sa.k).transpose(2, 3)).add(bias);                               // unscaled
            var y = scores.softmax(-1).matmul(Heads(sa.v)).transpose(1, 2).reshape(b, l, c.Inner);
            x = x.add(sa.o.forward(y));
            x = x.add(block.FeedForward.DenseReluDense.Forward(block.FeedForward.layer_norm.forward(x)));
        }
        return encoder.final_layer_norm.forward(x);
    }
}
