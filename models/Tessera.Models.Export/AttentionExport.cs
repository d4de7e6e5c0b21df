using Tessera.Export;
using Tessera.Abstractions;
using Tessera.Models.Layers;
using Tessera.Onnx;

namespace Tessera.Models.Export;

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
        var q = AttentionOps.SplitHeads(ctx, ctx.Module("q_proj", a.q_proj, x), a.Heads, a.HeadDim);    // (B, H, T, Dh)
        var k = AttentionOps.SplitHeads(ctx, ctx.Module("k_proj", a.k_proj, x), a.KvHeads, a.HeadDim);  // (B, Hkv, T, Dh)
        var v = AttentionOps.SplitHeads(ctx, ctx.Module("v_proj", a.v_proj, x), a.KvHeads, a.HeadDim);
        if (a.q_norm is not null)
        {
            q = ctx.Module("q_norm", a.q_norm, q);
            k = ctx.Module("k_norm", a.k_norm!, k);
        }
        if (rope is { } r)
        {
            q = AttentionOps.ApplyRotary(ctx, q, r.Cos, r.Sin, r.RotaryDim, a.HeadDim);
            k = AttentionOps.ApplyRotary(ctx, k, r.Cos, r.Sin, r.RotaryDim, a.HeadDim);
        }
        if (pastK is { } pk)
        {
            k = ctx.Concat(2, pk, k);
            v = ctx.Concat(2, pastV!.Value, v);
        }
        var y = AttentionOps.ScaledDotProduct(ctx, q, k, v, a.Heads, a.KvHeads, a.HeadDim, mask);  // (B, T, D)
        return (ctx.Module("o_proj", a.o_proj, y), k, v);
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
}
