using Tessera.Abstractions;
using Tessera.Export;
using Tessera.Onnx;
using Tessera.Onnx.Proto;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

/// <summary>
/// The glyph encoder (ByT5's T5 encoder) as one ONNX graph, dynamic in batch and length: inputs <c>input_ids</c>
/// int64 (batch, length) and <c>attention_mask</c> int64 (batch, length; 1 = real token, including GLM-Image's
/// leading pad); output <c>glyph_states</c> float (batch, length, d_model), every position (padded ones too, as
/// transformers computes them; the pipeline keeps the masked-in ones). Weight names are the checkpoint's.
/// The relative-position buckets are computed in the graph for any length: key − query from Range, then the
/// bucket of each distance from a table over distances 0..max_distance (beyond it the bucket is saturated, so the
/// distance is clamped), taken from <see cref="GlmImageT5Encoder.RelativeBucket"/> so its float32 boundaries are
/// transformers'; positive distances add half the buckets.
/// </summary>
public static class GlmImageT5Graph
{
    public static ModelProto Build(GlmImageT5Encoder m, int opset = ExportContext.DefaultOpset)
    {
        var c = m.Config;
        var ctx = new ExportContext("glm_image_glyph_encoder", opset);
        var g = ctx.Graph;
        var ids = g.Input("input_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "length"));
        var attentionMask = g.Input("attention_mask", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "length"));

        OnnxValue bias;
        using (ctx.Enter("encoder.block.0.layer.0.SelfAttention"))
        {
            var buckets = RelativeBuckets(ctx, ids, c);                                                               // (L, L)
            var perHead = ctx.Module("relative_attention_bias", m.encoder.block[0].Attention.SelfAttention.relative_attention_bias!, buckets); // (L, L, H)
            bias = ctx.Unsqueeze(ctx.Transpose(perHead, 2, 0, 1), 0);                                                  // (1, H, L, L)
        }
        // Padding keys: + float32's lowest value (transformers' additive mask), so a fully padded row stays finite.
        var keyMask = ctx.Op("Where", ctx.Cast(attentionMask, TensorElementType.Bool), ctx.F32(0f), ctx.F32(float.MinValue));
        bias = ctx.Add(bias, ctx.Unsqueeze(keyMask, 1, 2));                                                          // (B, H, L, L)

        var x = ctx.Module("shared", m.shared, ids);                                                                 // (B, L, D); embed_tokens is the same tensor
        using (ctx.Enter("encoder"))
        {
            for (int i = 0; i < m.encoder.block.Count; i++)
            {
                var block = m.encoder.block[i];
                using var _ = ctx.Enter($"block.{i}");
                using (ctx.Enter("layer.0"))
                {
                    var h = ctx.Module("layer_norm", block.Attention.layer_norm, x);
                    var sa = block.Attention.SelfAttention;
                    OnnxValue y;
                    using (ctx.Enter("SelfAttention"))
                    {
                        var q = AttentionOps.SplitHeads(ctx, ctx.Module("q", sa.q, h), c.Heads, c.DKv);                // (B, H, L, Dkv)
                        var k = AttentionOps.SplitHeads(ctx, ctx.Module("k", sa.k, h), c.Heads, c.DKv);
                        var v = AttentionOps.SplitHeads(ctx, ctx.Module("v", sa.v, h), c.Heads, c.DKv);
                        var scores = ctx.Add(ctx.MatMul(q, ctx.Transpose(k, 0, 1, 3, 2)), bias);                       // unscaled, (B, H, L, L)
                        var attended = ctx.MatMul(ctx.Softmax(scores, -1), v);                                         // (B, H, L, Dkv)
                        y = ctx.Module("o", sa.o, ctx.Reshape(ctx.Transpose(attended, 0, 2, 1, 3), 0, 0, c.Inner));
                    }
                    x = ctx.Add(x, y);
                }
                using (ctx.Enter("layer.1"))
                {
                    var h = ctx.Module("layer_norm", block.FeedForward.layer_norm, x);
                    var ff = block.FeedForward.DenseReluDense;
                    using (ctx.Enter("DenseReluDense"))
                    {
                        var gate = StockMappings.Gelu(ctx, ctx.Module("wi_0", ff.wi_0, h), tanh: true);
                        x = ctx.Add(x, ctx.Module("wo", ff.wo, ctx.Mul(gate, ctx.Module("wi_1", ff.wi_1, h))));
                    }
                }
            }
            x = ctx.Module("final_layer_norm", m.encoder.final_layer_norm, x);
        }
        g.Output(x, "glyph_states", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", "length", c.DModel));
        g.Metadata("tessera.stage", "glm-image-glyph-encoder").Metadata("tessera.layers", $"{m.encoder.block.Count} of {c.Layers}");
        return g.Build();
    }

    /// <summary>T5's bidirectional bucket (L, L) int64 of key − query for the length of <paramref name="ids"/>.</summary>
    private static OnnxValue RelativeBuckets(ExportContext ctx, OnnxValue ids, GlmImageT5Config c)
    {
        // Bucket of each distance 0..max_distance (no direction offset: the distances are passed as ≤ 0).
        long[] table;
        using (no_grad())
        using (var d = arange(0, c.RelativeMaxDistance + 1, dtype: ScalarType.Int64).neg())
        using (var t = GlmImageT5Encoder.RelativeBucket(d, c.RelativeBuckets, c.RelativeMaxDistance))
            table = t.data<long>().ToArray();
        var length = ctx.Op("Squeeze", ctx.Slice(ctx.Op("Shape", ids), 1, 2, 0), ctx.I64(0));                        // scalar L
        var pos = ctx.Op("Range", ctx.Graph.Constant<long>([0]), length, ctx.Graph.Constant<long>([1]));             // (L)
        var relative = ctx.Sub(ctx.Unsqueeze(pos, 0), ctx.Unsqueeze(pos, 1));                                       // (L, L): key − query
        var distance = ctx.Op("Min", ctx.Op("Abs", relative), ctx.Graph.Constant<long>([c.RelativeMaxDistance]));
        var magnitude = ctx.Op("Gather", ctx.Graph.Constant<long>(table, table.Length), distance);
        var positive = ctx.Cast(ctx.Op("Greater", relative, ctx.Graph.Constant<long>([0])), TensorElementType.Int64);
        return ctx.Add(magnitude, ctx.Mul(positive, ctx.Graph.Constant<long>([c.RelativeBuckets / 2])));
    }
}
