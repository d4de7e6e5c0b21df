using Tessera.Abstractions;
using Tessera.Models.Layers;
using Tessera.Onnx;

namespace Tessera.Export;

/// <summary>
/// Attention in standard ONNX ops (portable to every execution provider): projections, optional QK-norm, optional
/// rotary (partial, multi-axis; tables made once per graph), past concat, grouped-query head repeat, masked softmax.
/// Shapes: x (B, T, D) → (B, T, D); present K/V (B, Hkv, P+T, Dh).
/// </summary>
public static class AttentionExport
{
    /// <param name="rope">cos/sin tables (B, 1, T, R), or null for no positions.</param>
    /// <param name="mask">bool (B or 1, 1, T, S): true where a query may attend; null attends everywhere.</param>
    public static (OnnxValue Y, OnnxValue PresentK, OnnxValue PresentV) Export(ExportContext ctx, string name, Attention a,
        OnnxValue x, (OnnxValue Cos, OnnxValue Sin, int RotaryDim)? rope, OnnxValue? mask, OnnxValue? pastK, OnnxValue? pastV)
    {
        using var _ = ctx.Enter(name);
        OnnxValue Heads(OnnxValue projected, int heads) => ctx.Transpose(ctx.Reshape(projected, 0, 0, heads, a.HeadDim), 0, 2, 1, 3);
        var q = Heads(ctx.Module("q_proj", a.q_proj, x), a.Heads);    // (B, H, T, Dh)
        var k = Heads(ctx.Module("k_proj", a.k_proj, x), a.KvHeads);  // (B, Hkv, T, Dh)
        var v = Heads(ctx.Module("v_proj", a.v_proj, x), a.KvHeads);
        if (a.q_norm is not null)
        {
            q = ctx.Module("q_norm", a.q_norm, q);
            k = ctx.Module("k_norm", a.k_norm!, k);
        }
        if (rope is { } r)
        {
            q = ApplyRotary(ctx, q, r.Cos, r.Sin, r.RotaryDim, a.HeadDim);
            k = ApplyRotary(ctx, k, r.Cos, r.Sin, r.RotaryDim, a.HeadDim);
        }
        if (pastK is { } pk)
        {
            k = ctx.Concat(2, pk, k);
            v = ctx.Concat(2, pastV!.Value, v);
        }
        var presentK = k;
        var presentV = v;
        int rep = a.Heads / a.KvHeads;
        if (rep > 1)
        {
            // (B, Hkv, S, Dh) → (B, Hkv, rep, S, Dh) → (B, H, S, Dh): each KV head serves `rep` query heads in turn.
            var expand = ctx.I64(1, 1, rep, 1, 1);
            k = ctx.Reshape(ctx.Op("Expand", ctx.Unsqueeze(k, 2), expand), 0, a.Heads, -1, a.HeadDim);
            v = ctx.Reshape(ctx.Op("Expand", ctx.Unsqueeze(v, 2), expand), 0, a.Heads, -1, a.HeadDim);
        }
        var scores = ctx.Mul(ctx.MatMul(q, ctx.Transpose(k, 0, 1, 3, 2)), ctx.F32((float)(1.0 / Math.Sqrt(a.HeadDim)))); // (B, H, T, S)
        if (mask is { } m) scores = ctx.Op("Where", m, scores, ctx.F32(float.NegativeInfinity));
        var y = ctx.MatMul(ctx.Softmax(scores, -1), v);                                            // (B, H, T, Dh)
        y = ctx.Reshape(ctx.Transpose(y, 0, 2, 1, 3), 0, 0, a.Heads * a.HeadDim);                 // (B, T, D)
        return (ctx.Module("o_proj", a.o_proj, y), presentK, presentV);
    }

    /// <summary>cos/sin tables (B, 1, T, R) from positions (B, T, axes), as <see cref="Rotary.Tables"/> computes them.</summary>
    public static (OnnxValue Cos, OnnxValue Sin) RotaryTables(ExportContext ctx, OnnxValue positions, int rotaryDim, int axes, double theta)
    {
        var widths = Rotary.Sections(rotaryDim, axes);
        var sections = new List<OnnxValue>();
        for (int ax = 0; ax < axes; ax++)
        {
            var inv = Enumerable.Range(0, widths[ax]).Select(i => (float)Math.Pow(theta, -(i * 2.0) / (widths[ax] * 2))).ToArray();
            var pos = ctx.Cast(ctx.Op("Gather", [positions, ctx.Graph.Constant<long>([ax], 1)], OnnxAttribute.Int("axis", 2)), TensorElementType.Float32); // (B, T, 1)
            sections.Add(ctx.Mul(pos, ctx.Graph.Constant<float>(inv, widths[ax])));                                                  // (B, T, width)
        }
        var freqs = sections.Count == 1 ? sections[0] : ctx.Concat(-1, sections.ToArray()); // (B, T, R/2)
        var emb = ctx.Unsqueeze(ctx.Concat(-1, freqs, freqs), 1);                            // (B, 1, T, R)
        return (ctx.Op("Cos", emb), ctx.Op("Sin", emb));
    }

    private static OnnxValue ApplyRotary(ExportContext ctx, OnnxValue x, OnnxValue cos, OnnxValue sin, int rotaryDim, int headDim)
    {
        int half = rotaryDim / 2;
        var rot = rotaryDim == headDim ? x : ctx.Slice(x, 0, rotaryDim, -1);
        var x1 = ctx.Slice(rot, 0, half, -1);
        var x2 = ctx.Slice(rot, half, rotaryDim, -1);
        var rotated = ctx.Concat(-1, ctx.Neg(x2), x1);
        var outRot = ctx.Add(ctx.Mul(rot, cos), ctx.Mul(rotated, sin));
        return rotaryDim == headDim ? outRot : ctx.Concat(-1, outRot, ctx.Slice(x, rotaryDim, headDim, -1));
    }
}
