using Tessera.Abstractions;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Export.Llm;

/// <summary>
/// The ONNX graph of a <see cref="CausalDecoder"/> in ONNX Runtime GenAI's conventions, one graph for prefill and
/// decode: inputs <c>input_ids</c> int64 (batch, sequence), <c>attention_mask</c> int64 (batch, total_sequence),
/// <c>position_ids</c> int64 (batch, sequence), <c>past_key_values.{i}.key|value</c> float
/// (batch, kv_heads, past_sequence, head_dim); outputs <c>logits</c> (batch, sequence, vocab) and
/// <c>present.{i}.key|value</c> (batch, kv_heads, total_sequence, head_dim). Node and weight names follow the
/// checkpoint's tensor names (<c>/model/layers.0/self_attn/q_proj/MatMul</c>, <c>model.layers.0.self_attn.q_proj.weight</c>).
/// </summary>
public static class DecoderGraph
{
    public static ModelProto Build(CausalDecoder model, int opset = ExportContext.DefaultOpset)
    {
        var c = model.Config;
        var ctx = new ExportContext($"{LlmConfig.Name(c.Architecture)}_decoder", opset);
        var g = ctx.Graph;
        var ids = g.Input("input_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "sequence"));
        var attentionMask = g.Input("attention_mask", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "total_sequence"));
        var positions = g.Input("position_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "sequence"));
        var kvDims = OnnxGraphBuilder.Dims("batch", c.KvHeads, "past_sequence", c.HeadDim);
        var past = Enumerable.Range(0, c.Layers).Select(i => (
            K: g.Input($"past_key_values.{i}.key", TensorElementType.Float32, kvDims),
            V: g.Input($"past_key_values.{i}.value", TensorElementType.Float32, kvDims))).ToList();
        var allowed = AttentionOps.CausalPaddingMask(ctx, attentionMask, ids); // (B, 1, T, S)

        void Present(int i, OnnxValue k, OnnxValue v)
        {
            var dims = OnnxGraphBuilder.Dims("batch", c.KvHeads, "total_sequence", c.HeadDim);
            g.Output(k, $"present.{i}.key", TensorElementType.Float32, dims);
            g.Output(v, $"present.{i}.value", TensorElementType.Float32, dims);
        }

        OnnxValue logits = model switch
        {
            Gpt2LmHead m => Gpt2(ctx, m, ids, positions, allowed, past, Present),
            LlamaForCausalLm m => Llama(ctx, m, ids, positions, allowed, past, Present),
            _ => throw new NotSupportedException($"No graph builder for {model.GetType().Name}."),
        };
        g.Output(logits, "logits", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", "sequence", c.VocabSize));
        g.Metadata("tessera.architecture", LlmConfig.Name(c.Architecture));
        return g.Build();
    }

    private static OnnxValue Gpt2(ExportContext ctx, Gpt2LmHead m, OnnxValue ids, OnnxValue positions, OnnxValue allowed,
        List<(OnnxValue K, OnnxValue V)> past, Action<int, OnnxValue, OnnxValue> present)
    {
        var c = m.Config;
        OnnxValue x;
        using (ctx.Enter("transformer"))
        {
            x = ctx.Add(ctx.Module("wte", m.transformer.wte, ids), ctx.Module("wpe", m.transformer.wpe, positions));
            for (int i = 0; i < c.Layers; i++)
            {
                var b = m.transformer.h[i];
                using var _ = ctx.Enter($"h.{i}");
                var qkv = ctx.Split(ctx.Module("attn.c_attn", b.attn.c_attn, ctx.Module("ln_1", b.ln_1, x)), 3, -1);
                var q = AttentionOps.SplitHeads(ctx, qkv[0], c.Heads, c.HeadDim);
                var k = ctx.Concat(2, past[i].K, AttentionOps.SplitHeads(ctx, qkv[1], c.Heads, c.HeadDim));
                var v = ctx.Concat(2, past[i].V, AttentionOps.SplitHeads(ctx, qkv[2], c.Heads, c.HeadDim));
                present(i, k, v);
                x = ctx.Add(x, ctx.Module("attn.c_proj", b.attn.c_proj, AttentionOps.ScaledDotProduct(ctx, q, k, v, c.Heads, c.Heads, c.HeadDim, allowed)));
                var hidden = StockMappings.Gelu(ctx, ctx.Module("mlp.c_fc", b.mlp.c_fc, ctx.Module("ln_2", b.ln_2, x)), c.GeluTanh);
                x = ctx.Add(x, ctx.Module("mlp.c_proj", b.mlp.c_proj, hidden));
            }
            x = ctx.Module("ln_f", m.transformer.ln_f, x);
        }
        return Head(ctx, x, m.lm_head, "transformer.wte.weight");
    }

    private static OnnxValue Llama(ExportContext ctx, LlamaForCausalLm m, OnnxValue ids, OnnxValue positions, OnnxValue allowed,
        List<(OnnxValue K, OnnxValue V)> past, Action<int, OnnxValue, OnnxValue> present)
    {
        var c = m.Config;
        OnnxValue x;
        using (ctx.Enter("model"))
        {
            var (cos, sin) = AttentionOps.RotaryTables(ctx, ctx.Unsqueeze(ctx.Cast(positions, TensorElementType.Float32), -1), c.HeadDim, c.RopeTheta);
            x = ctx.Module("embed_tokens", m.model.embed_tokens, ids);
            for (int i = 0; i < c.Layers; i++)
            {
                var l = m.model.layers[i];
                using var _ = ctx.Enter($"layers.{i}");
                var h = ctx.Module("input_layernorm", l.input_layernorm, x);
                OnnxValue y;
                using (ctx.Enter("self_attn"))
                {
                    var q = AttentionOps.SplitHeads(ctx, ctx.Module("q_proj", l.self_attn.q_proj, h), c.Heads, c.HeadDim);
                    var k = AttentionOps.SplitHeads(ctx, ctx.Module("k_proj", l.self_attn.k_proj, h), c.KvHeads, c.HeadDim);
                    var v = AttentionOps.SplitHeads(ctx, ctx.Module("v_proj", l.self_attn.v_proj, h), c.KvHeads, c.HeadDim);
                    q = AttentionOps.ApplyRotary(ctx, q, cos, sin, c.HeadDim, c.HeadDim);
                    k = ctx.Concat(2, past[i].K, AttentionOps.ApplyRotary(ctx, k, cos, sin, c.HeadDim, c.HeadDim));
                    v = ctx.Concat(2, past[i].V, v);
                    present(i, k, v);
                    y = ctx.Module("o_proj", l.self_attn.o_proj, AttentionOps.ScaledDotProduct(ctx, q, k, v, c.Heads, c.KvHeads, c.HeadDim, allowed));
                }
                x = ctx.Add(x, y);
                h = ctx.Module("post_attention_layernorm", l.post_attention_layernorm, x);
                using (ctx.Enter("mlp"))
                {
                    var gated = ctx.Mul(ctx.Silu(ctx.Module("gate_proj", l.mlp.gate_proj, h)), ctx.Module("up_proj", l.mlp.up_proj, h));
                    x = ctx.Add(x, ctx.Module("down_proj", l.mlp.down_proj, gated));
                }
            }
            x = ctx.Module("norm", m.model.norm, x);
        }
        return Head(ctx, x, m.lm_head, "model.embed_tokens.weight");
    }

    /// <summary>The output head: its own Linear, or the input embedding transposed (tied; stored once in the file).</summary>
    private static OnnxValue Head(ExportContext ctx, OnnxValue x, TorchSharp.Modules.Linear? head, string embeddingName)
    {
        if (head is not null) return ctx.Module("lm_head", head, x);
        var table = ctx.Graph.HasValue(embeddingName)
            ? new OnnxValue(embeddingName)
            : throw new InvalidOperationException($"The tied head needs the embedding initializer {embeddingName}.");
        return ctx.MatMul(x, ctx.Transpose(table, 1, 0));
    }
}
