using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Layers;

/// <summary>
/// Multi-head attention with grouped-query heads (KV heads shared by groups of query heads), optional rotary
/// positions (partial, multi-axis), optional QK-norm (RMSNorm on each head's queries and keys), causal or full.
/// x (B, T, D) → (B, T, D). With a cache, new keys/values are appended to past ones (B, Hkv, Tpast, Dh).
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor>
{
    public readonly Linear q_proj, k_proj, v_proj, o_proj;
    public readonly RmsNorm? q_norm, k_norm;

    public Attention(long dim, int heads, int kvHeads, bool qkNorm = false, bool bias = false) : base(nameof(Attention))
    {
        if (dim % heads != 0) throw new ArgumentException($"hidden {dim} is not divisible by {heads} heads.");
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads are not divisible into {kvHeads} KV heads.");
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = (int)(dim / heads);
        q_proj = nn.Linear(dim, heads * HeadDim, hasBias: bias);
        k_proj = nn.Linear(dim, kvHeads * HeadDim, hasBias: bias);
        v_proj = nn.Linear(dim, kvHeads * HeadDim, hasBias: bias);
        o_proj = nn.Linear(heads * HeadDim, dim, hasBias: false);
        if (qkNorm)
        {
            q_norm = new RmsNorm(HeadDim);
            k_norm = new RmsNorm(HeadDim);
        }
        RegisterComponents();
    }

    public int Heads { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }

    /// <summary>Full (non-causal) attention without positions.</summary>
    public override Tensor forward(Tensor x) => Forward(x, null, false, null, null, out _, out _);

    /// <summary>
    /// x (B, T, D). rope: cos/sin tables (B, 1, T, R) with R rotary channels, or null. causal: mask future keys
    /// (with a cache, query i sees all past keys and new keys up to i). pastK/pastV: (B, Hkv, P, Dh) or null.
    /// Returns (B, T, D) and the full keys/values (B, Hkv, P+T, Dh) for the next step.
    /// </summary>
    public Tensor Forward(Tensor x, (Tensor Cos, Tensor Sin)? rope, bool causal, Tensor? pastK, Tensor? pastV,
        out Tensor presentK, out Tensor presentV, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, Heads, HeadDim).transpose(1, 2);   // (B, H, T, Dh)
        var k = k_proj.forward(x).view(b, t, KvHeads, HeadDim).transpose(1, 2); // (B, Hkv, T, Dh)
        var v = v_proj.forward(x).view(b, t, KvHeads, HeadDim).transpose(1, 2); // (B, Hkv, T, Dh)
        if (q_norm is not null)
        {
            q = q_norm.forward(q);
            k = k_norm!.forward(k);
        }
        if (rope is { } r)
        {
            int rotary = (int)r.Cos.shape[^1];
            q = Rotary.Apply(q, r.Cos, r.Sin, rotary);
            k = Rotary.Apply(k, r.Cos, r.Sin, rotary);
        }
        if (pastK is not null)
        {
            k = cat([pastK, k], 2);
            v = cat([pastV!, v], 2);
        }
        presentK = k.MoveToOuterDisposeScope();
        presentV = v.MoveToOuterDisposeScope();

        int rep = Heads / KvHeads;
        var kk = rep == 1 ? k : k.repeat_interleave(rep, 1);                   // (B, H, S, Dh)
        var vv = rep == 1 ? v : v.repeat_interleave(rep, 1);
        long s = kk.shape[2];
        Tensor? mask = attentionMask;
        if (causal && (t > 1 || pastK is null))
        {
            // query i (at absolute position s - t + i) may see keys 0 .. s - t + i
            var allowed = ones(t, s, dtype: ScalarType.Bool, device: x.device).tril(s - t);
            mask = mask is null ? allowed : mask.logical_and(allowed);
        }
        var y = nn.functional.scaled_dot_product_attention(q, kk, vv, mask, 0.0, false); // (B, H, T, Dh)
        y = y.transpose(1, 2).reshape(b, t, Heads * HeadDim);
        return o_proj.forward(y).MoveToOuterDisposeScope();
    }
}
