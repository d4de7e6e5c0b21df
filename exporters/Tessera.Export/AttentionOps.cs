using Tessera.Abstractions;
using Tessera.Onnx;

namespace Tessera.Export;

/// <summary>
/// Attention building blocks in standard ONNX ops (portable to every execution provider), shared by every exporter:
/// head split, rotary embedding (the "rotate half" convention of Llama and GLM), grouped-query head repeat and masked
/// scaled dot-product attention. Shapes in the comments: B batch, T queries, S keys, H heads, Hkv KV heads, Dh head width.
/// </summary>
public static class AttentionOps
{
    /// <summary>(B, T, heads·Dh) → (B, heads, T, Dh).</summary>
    public static OnnxValue SplitHeads(ExportContext ctx, OnnxValue projected, int heads, int headDim) =>
        ctx.Transpose(ctx.Reshape(projected, 0, 0, heads, headDim), 0, 2, 1, 3);

    /// <summary>
    /// Rotary tables (B, 1, T, R) for positions (B, T, 1) float: inverse frequencies θ^(−2i/R) for each of the R/2
    /// frequency pairs, duplicated as [f, f] (rotate-half layout).
    /// </summary>
    public static (OnnxValue Cos, OnnxValue Sin) RotaryTables(ExportContext ctx, OnnxValue positions, int rotaryDim, double theta)
    {
        var inv = Enumerable.Range(0, rotaryDim / 2).Select(i => (float)Math.Pow(theta, -(i * 2.0) / rotaryDim)).ToArray();
        var freqs = ctx.Mul(positions, ctx.Graph.Constant<float>(inv, inv.Length)); // (B, T, R/2)
        var emb = ctx.Unsqueeze(ctx.Concat(-1, freqs, freqs), 1);                  // (B, 1, T, R)
        return (ctx.Op("Cos", emb), ctx.Op("Sin", emb));
    }

    /// <summary>x·cos + rotate_half(x)·sin on the first <paramref name="rotaryDim"/> channels of x (B, H, T, Dh); the rest pass through.</summary>
    public static OnnxValue ApplyRotary(ExportContext ctx, OnnxValue x, OnnxValue cos, OnnxValue sin, int rotaryDim, int headDim)
    {
        int half = rotaryDim / 2;
        var rot = rotaryDim == headDim ? x : ctx.Slice(x, 0, rotaryDim, -1);
        var x1 = ctx.Slice(rot, 0, half, -1);
        var x2 = ctx.Slice(rot, half, rotaryDim, -1);
        var rotated = ctx.Concat(-1, ctx.Neg(x2), x1);
        var outRot = ctx.Add(ctx.Mul(rot, cos), ctx.Mul(rotated, sin));
        return rotaryDim == headDim ? outRot : ctx.Concat(-1, outRot, ctx.Slice(x, rotaryDim, headDim, -1));
    }

    /// <summary>
    /// softmax(q kᵀ / √Dh, masked) v for q (B, H, T, Dh) and k, v (B, Hkv, S, Dh); each KV head serves H/Hkv query heads
    /// in turn. <paramref name="allowed"/>: bool broadcastable to (B, H, T, S), true where a query may attend; null
    /// attends everywhere. Returns (B, T, H·Dh).
    /// </summary>
    public static OnnxValue ScaledDotProduct(ExportContext ctx, OnnxValue q, OnnxValue k, OnnxValue v, int heads, int kvHeads, int headDim, OnnxValue? allowed)
    {
        int rep = heads / kvHeads;
        if (rep > 1)
        {
            // (B, Hkv, S, Dh) → (B, Hkv, rep, S, Dh) → (B, H, S, Dh)
            var expand = ctx.I64(1, 1, rep, 1, 1);
            k = ctx.Reshape(ctx.Op("Expand", ctx.Unsqueeze(k, 2), expand), 0, heads, -1, headDim);
            v = ctx.Reshape(ctx.Op("Expand", ctx.Unsqueeze(v, 2), expand), 0, heads, -1, headDim);
        }
        var scores = ctx.Mul(ctx.MatMul(q, ctx.Transpose(k, 0, 1, 3, 2)), ctx.F32((float)(1.0 / Math.Sqrt(headDim)))); // (B, H, T, S)
        if (allowed is { } m) scores = ctx.Op("Where", m, scores, ctx.F32(float.NegativeInfinity));
        var y = ctx.MatMul(ctx.Softmax(scores, -1), v);                                // (B, H, T, Dh)
        return ctx.Reshape(ctx.Transpose(y, 0, 2, 1, 3), 0, 0, heads * headDim);       // (B, T, H·Dh)
    }

    /// <summary>
    /// The decoder mask (B, 1, T, S) from <c>attention_mask</c> (B, S) int64 (1 = real token) for the last T of S
    /// positions: key ≤ query, and the key is real or is the query itself (so a padding query still has one key and
    /// no row of the softmax is all −∞).
    /// </summary>
    public static OnnxValue CausalPaddingMask(ExportContext ctx, OnnxValue attentionMask, OnnxValue inputIds)
    {
        var gather1 = ctx.Graph.Constant<long>([1], 1);
        var s = ctx.Op("Squeeze", ctx.Op("Gather", [ctx.Op("Shape", attentionMask), gather1], OnnxAttribute.Int("axis", 0)), ctx.I64(0));
        var t = ctx.Op("Squeeze", ctx.Op("Gather", [ctx.Op("Shape", inputIds), gather1], OnnxAttribute.Int("axis", 0)), ctx.I64(0));
        var zero = ctx.Graph.Constant<long>([0]);
        var one = ctx.Graph.Constant<long>([1]);
        var keyIndex = ctx.Unsqueeze(ctx.Op("Range", zero, s, one), 0);               // (1, S)
        var queryIndex = ctx.Unsqueeze(ctx.Op("Range", ctx.Sub(s, t), s, one), 1);    // (T, 1)
        var causal = ctx.Op("LessOrEqual", keyIndex, queryIndex);                      // (T, S)
        var self = ctx.Op("Equal", keyIndex, queryIndex);                              // (T, S)
        var valid = ctx.Unsqueeze(ctx.Cast(attentionMask, TensorElementType.Bool), 1, 2); // (B, 1, 1, S)
        return ctx.Op("And", ctx.Op("Or", valid, self), causal);                       // (B, 1, T, S)
    }
}
