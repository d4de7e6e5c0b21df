using Tessera.Abstractions;
using Tessera.Export;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.GlmImage;

/// <summary>
/// The AR text model as one ONNX graph for prefill and decode, in the KV-cache conventions of the other exports:
/// inputs <c>input_ids</c> int64 (batch, sequence), <c>attention_mask</c> int64 (batch, total_sequence),
/// <c>position_ids</c> int64 (3, batch, sequence) — M-RoPE (temporal, height, width) as the official processor builds
/// them — and <c>past_key_values.{i}.key|value</c> float (batch, 2, past_sequence, 128); outputs <c>logits</c>
/// (batch, sequence, 16512) and <c>present.{i}.key|value</c>. Weight names are the checkpoint's.
/// </summary>
public static class GlmImageArGraph
{
    public static ModelProto Build(GlmImageTextModel m, int opset = ExportContext.DefaultOpset)
    {
        var c = m.Config;
        var ctx = new ExportContext("glm_image_ar", opset);
        var g = ctx.Graph;
        var ids = g.Input("input_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "sequence"));
        var attentionMask = g.Input("attention_mask", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "total_sequence"));
        var positions = g.Input("position_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims(3, "batch", "sequence"));
        var kvIn = OnnxGraphBuilder.Dims("batch", c.KvHeads, "past_sequence", c.HeadDim);
        var kvOut = OnnxGraphBuilder.Dims("batch", c.KvHeads, "total_sequence", c.HeadDim);
        var lm = m.model.language_model;
        var past = Enumerable.Range(0, lm.layers.Count).Select(i => (
            K: g.Input($"past_key_values.{i}.key", TensorElementType.Float32, kvIn),
            V: g.Input($"past_key_values.{i}.value", TensorElementType.Float32, kvIn))).ToList();
        var allowed = AttentionOps.CausalPaddingMask(ctx, attentionMask, ids);
        var (cos, sin) = Rotary(ctx, positions, c);

        OnnxValue x;
        using (ctx.Enter("model.language_model"))
        {
            x = ctx.Module("embed_tokens", lm.embed_tokens, ids);
            for (int i = 0; i < lm.layers.Count; i++)
            {
                var l = lm.layers[i];
                using var _ = ctx.Enter($"layers.{i}");
                var h = ctx.Module("input_layernorm", l.input_layernorm, x);
                OnnxValue attn;
                using (ctx.Enter("self_attn"))
                {
                    var q = AttentionOps.SplitHeads(ctx, ctx.Module("q_proj", l.self_attn.q_proj, h), c.Heads, c.HeadDim);
                    var k = AttentionOps.SplitHeads(ctx, ctx.Module("k_proj", l.self_attn.k_proj, h), c.KvHeads, c.HeadDim);
                    var v = AttentionOps.SplitHeads(ctx, ctx.Module("v_proj", l.self_attn.v_proj, h), c.KvHeads, c.HeadDim);
                    q = AttentionOps.ApplyRotary(ctx, q, cos, sin, c.RotaryDim, c.HeadDim);
                    k = ctx.Concat(2, past[i].K, AttentionOps.ApplyRotary(ctx, k, cos, sin, c.RotaryDim, c.HeadDim));
                    v = ctx.Concat(2, past[i].V, v);
                    g.Output(k, $"present.{i}.key", TensorElementType.Float32, kvOut);
                    g.Output(v, $"present.{i}.value", TensorElementType.Float32, kvOut);
                    attn = ctx.Module("o_proj", l.self_attn.o_proj, AttentionOps.ScaledDotProduct(ctx, q, k, v, c.Heads, c.KvHeads, c.HeadDim, allowed));
                }
                x = ctx.Add(x, ctx.Module("post_self_attn_layernorm", l.post_self_attn_layernorm, attn));
                var gateUp = ctx.Split(ctx.Module("mlp.gate_up_proj", l.mlp.gate_up_proj, ctx.Module("post_attention_layernorm", l.post_attention_layernorm, x)), 2, -1);
                var mlp = ctx.Module("mlp.down_proj", l.mlp.down_proj, ctx.Mul(ctx.Silu(gateUp[0]), gateUp[1]));
                x = ctx.Add(x, ctx.Module("post_mlp_layernorm", l.post_mlp_layernorm, mlp));
            }
            x = ctx.Module("norm", lm.norm, x);
        }
        var logits = ctx.Module("lm_head", m.lm_head, x);
        g.Output(logits, "logits", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", "sequence", c.VisionVocabSize));
        g.Metadata("tessera.stage", "glm-image-ar").Metadata("tessera.layers", $"{lm.layers.Count} of {c.Layers}");
        return g.Build();
    }

    /// <summary>
    /// M-RoPE tables (B, 1, S, R): inverse frequencies θ^(−2k/R) for k &lt; R/2; frequency k takes its position from
    /// the axis whose <c>mrope_section</c> chunk contains k (temporal, then height, then width); duplicated [f, f].
    /// </summary>
    private static (OnnxValue Cos, OnnxValue Sin) Rotary(ExportContext ctx, OnnxValue positions, GlmImageTextConfig c)
    {
        int half = c.RotaryDim / 2;
        var inv = Enumerable.Range(0, half).Select(i => (float)Math.Pow(c.RopeTheta, -(i * 2.0) / c.RotaryDim)).ToArray();
        var perAxis = ctx.Mul(ctx.Unsqueeze(ctx.Cast(positions, TensorElementType.Float32), -1), ctx.Graph.Constant<float>(inv, half)); // (3, B, S, R/2)
        var chunks = new List<OnnxValue>();
        for (int axis = 0, start = 0; axis < c.MropeSection.Length; start += c.MropeSection[axis], axis++)
        {
            var plane = ctx.Op("Gather", [perAxis, ctx.Graph.Constant<long>([axis])], OnnxAttribute.Int("axis", 0));           // (B, S, R/2)
            chunks.Add(ctx.Slice(plane, start, start + c.MropeSection[axis], -1));
        }
        var freqs = ctx.Concat(-1, chunks.ToArray());                                                                       // (B, S, R/2)
        var emb = ctx.Unsqueeze(ctx.Concat(-1, freqs, freqs), 1);                                                           // (B, 1, S, R)
        return (ctx.Op("Cos", emb), ctx.Op("Sin", emb));
    }
}
