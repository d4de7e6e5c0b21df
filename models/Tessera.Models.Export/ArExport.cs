using Tessera.Export;
using Tessera.Abstractions;
using Tessera.Models;
using Tessera.Models.Ar;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Models.Export;

/// <summary>
/// The AR model as one graph that serves prefill (empty past) and decode, in the KV-cache naming other tools use:
/// inputs <c>input_ids</c> (batch, sequence) int64, <c>position_ids</c> (batch, sequence, 3) int64,
/// <c>attention_mask</c> (batch, past_sequence + sequence) int64 (1 = real token, 0 = padding),
/// <c>past_key_values.{i}.key|value</c> (batch, kv_heads, past_sequence, head_dim) float;
/// outputs <c>logits</c> (batch, sequence, codebook) and <c>present.{i}.key|value</c> (batch, kv_heads, past_sequence + sequence, head_dim).
/// </summary>
public static class ArExport
{
    public static ModelProto Export(ArTransformer model, string graphName = "tessera_ar", int opset = ExportContext.DefaultOpset)
    {
        var c = model.Config;
        var ctx = new ExportContext(graphName, opset);
        var g = ctx.Graph;
        var ids = g.Input("input_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "sequence"));
        var positions = g.Input("position_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "sequence", c.RotaryAxes));
        var attentionMask = g.Input("attention_mask", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "total_sequence"));
        var past = Enumerable.Range(0, c.Layers).Select(i => (
            K: g.Input($"past_key_values.{i}.key", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.KvHeads, "past_sequence", c.HeadDim)),
            V: g.Input($"past_key_values.{i}.value", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.KvHeads, "past_sequence", c.HeadDim)))).ToList();

        // Mask (B, 1, T, S): (key is a real token OR key is the query itself) AND key position <= query position.
        var mask = AttentionOps.CausalPaddingMask(ctx, attentionMask, ids);

        var (cos, sin) = AttentionExport.RotaryTables(ctx, positions, c.RotaryDim, c.RotaryAxes, c.RopeTheta);
        var x = ctx.Module("embed", model.embed, ids);
        for (int i = 0; i < c.Layers; i++)
        {
            var layer = model.layers[i];
            using var _ = ctx.Enter($"layers.{i}");
            var (attn, pk, pv) = AttentionExport.Export(ctx, "attn", layer.attn, ctx.Module("input_norm", layer.input_norm, x),
                (cos, sin, c.RotaryDim), mask, past[i].K, past[i].V);
            var h = ctx.Add(x, attn);
            x = ctx.Add(h, ctx.Module("mlp", layer.mlp, ctx.Module("post_attention_norm", layer.post_attention_norm, h)));
            g.Output(pk, $"present.{i}.key", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.KvHeads, "total_sequence", c.HeadDim));
            g.Output(pv, $"present.{i}.value", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.KvHeads, "total_sequence", c.HeadDim));
        }
        var logits = ctx.Module("lm_head", model.lm_head, ctx.Module("final_norm", model.final_norm, x));
        g.Output(logits, "logits", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", "sequence", c.CodebookSize));
        g.Metadata("tessera.stage", "ar").Metadata("tessera.config", System.Text.Json.JsonSerializer.Serialize(c, StageConfig.Json));
        return g.Build();
    }
}
