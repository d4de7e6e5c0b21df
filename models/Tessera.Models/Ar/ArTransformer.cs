using Tessera.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Ar;

/// <summary>One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(x)).</summary>
public sealed class ArLayer : nn.Module<Tensor, Tensor>
{
    public readonly RmsNorm input_norm, post_attention_norm;
    public readonly Attention attn;
    public readonly SwiGlu mlp;

    public ArLayer(ArConfig c) : base(nameof(ArLayer))
    {
        input_norm = new RmsNorm(c.Hidden);
        attn = new Attention(c.Hidden, c.Heads, c.KvHeads);
        post_attention_norm = new RmsNorm(c.Hidden);
        mlp = new SwiGlu(c.Hidden, c.Ffn);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("Use Forward with positions.");

    public Tensor Forward(Tensor x, (Tensor, Tensor) rope, Tensor mask, Tensor? pastK, Tensor? pastV, out Tensor presentK, out Tensor presentV)
    {
        using var scope = NewDisposeScope();
        var h = x + attn.Forward(input_norm.forward(x), rope, causal: true, pastK, pastV, out presentK, out presentV, mask);
        var y = h + mlp.forward(post_attention_norm.forward(h));
        presentK.MoveToOuterDisposeScope();
        presentV.MoveToOuterDisposeScope();
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The AR model: ids (B, T) with 3-axis positions (B, T, 3) → logits over visual tokens (B, T, CodebookSize).
/// Keys marked invalid (padding) are never attended to, except that every query sees itself (so padded rows stay
/// finite). With past keys/values (one (B, KvHeads, P, HeadDim) pair per layer) only the new tokens are processed.
/// </summary>
public sealed class ArTransformer : nn.Module<Tensor, Tensor>
{
    public readonly Embedding embed;
    public readonly ModuleList<ArLayer> layers;
    public readonly RmsNorm final_norm;
    public readonly Linear lm_head;

    public ArTransformer(ArConfig config) : base(nameof(ArTransformer))
    {
        Config = config;
        embed = nn.Embedding(config.VocabSize, config.Hidden);
        layers = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new ArLayer(config)).ToArray());
        final_norm = new RmsNorm(config.Hidden);
        lm_head = nn.Linear(config.Hidden, config.CodebookSize, hasBias: false);
        RegisterComponents();
    }

    public ArConfig Config { get; }

    public override Tensor forward(Tensor ids) => throw new NotSupportedException("Use Forward with positions.");

    /// <param name="ids">(B, T) token ids.</param>
    /// <param name="positions">(B, T, 3) positions.</param>
    /// <param name="keyValid">(B, P + T) bool: which keys (past then new) are real tokens; null = all.</param>
    /// <param name="past">Per-layer past keys/values, or null for a fresh sequence.</param>
    /// <param name="present">Per-layer keys/values including the new tokens.</param>
    public Tensor Forward(Tensor ids, Tensor positions, Tensor? keyValid, IReadOnlyList<(Tensor K, Tensor V)>? past,
        out List<(Tensor K, Tensor V)> present)
    {
        using var scope = NewDisposeScope();
        long b = ids.shape[0], t = ids.shape[1];
        long p = past?[0].K.shape[2] ?? 0;
        var rope = Rotary.Tables(positions, Config.RotaryDim, Config.RotaryAxes, Config.RopeTheta);
        // mask (B, 1, T, P+T): key valid, or the query itself; the causal part is added inside attention.
        var valid = keyValid ?? ones(b, p + t, dtype: ScalarType.Bool, device: ids.device);
        var self = arange(p + t, device: ids.device).unsqueeze(0).eq(arange(p, p + t, device: ids.device).unsqueeze(1)); // (T, P+T): key == query
        var mask = valid.view(b, 1, 1, p + t).logical_or(self.view(1, 1, t, p + t));

        var x = embed.forward(ids);
        present = [];
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].Forward(x, rope, mask, past?[i].K, past?[i].V, out var k, out var v);
            present.Add((k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope()));
        }
        return lm_head.forward(final_norm.forward(x)).MoveToOuterDisposeScope();
    }
}
