using Tessera.Abstractions;
using Tessera.Export;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.GlmImage;

/// <summary>
/// The DiT as one ONNX graph, dynamic in batch, latent height and width (multiples of the patch) and glyph length:
/// inputs <c>latents</c> float (batch, C, h, w), <c>glyph_states</c> float (batch, glyphs, 1472), <c>prior_ids</c>
/// int64 (batch, h/2 · w/2), <c>prior_drop</c> bool (same; true zeroes that prior embedding, as the unconditional
/// branch does), <c>timestep</c> float (batch), <c>target_size</c> and <c>crop_coords</c> float (batch, 2);
/// output <c>velocity</c> float (batch, C, h, w). Weight names are the checkpoint's.
/// </summary>
public static class GlmImageDitGraph
{
    public static ModelProto Build(GlmImageDit m, int opset = ExportContext.DefaultOpset)
    {
        var c = m.Config;
        int p = c.PatchSize, d = c.Hidden;
        var ctx = new ExportContext("glm_image_dit", opset);
        var g = ctx.Graph;
        var latents = g.Input("latents", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.InChannels, "height", "width"));
        var glyphStates = g.Input("glyph_states", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", "glyphs", c.TextEmbedDim));
        var priorIds = g.Input("prior_ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", "tokens"));
        var priorDrop = g.Input("prior_drop", TensorElementType.Bool, OnnxGraphBuilder.Dims("batch", "tokens"));
        var timestep = g.Input("timestep", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch"));
        var targetSize = g.Input("target_size", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 2));
        var crop = g.Input("crop_coords", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 2));

        OnnxValue Dim(OnnxValue x, long axis) => ctx.Slice(ctx.Op("Shape", x), axis, axis + 1, 0);                  // [n] int64
        var patch = ctx.I64(p);
        var hp = ctx.Div(Dim(latents, 2), patch);
        var wp = ctx.Div(Dim(latents, 3), patch);

        // Patchify: (B, C, h, w) → (B, C, Hp, p, Wp, p) → (B, Hp, Wp, C, p, p) → (B, N, C·p·p).
        var split = ctx.Op("Reshape", latents, ctx.Concat(0, ctx.I64(0, c.InChannels), hp, patch, wp, patch));
        var patches = ctx.Reshape(ctx.Transpose(split, 0, 2, 4, 1, 3, 5), 0, -1, c.InChannels * p * p);
        var x = ctx.Module("image_projector.proj", m.image_projector.proj, patches);
        var prior = ctx.Module("prior_token_embedding", m.prior_token_embedding, priorIds);
        prior = ctx.Op("Where", ctx.Unsqueeze(priorDrop, -1), ctx.F32(0f), prior);
        x = ctx.Add(x, FeedForward(ctx, "prior_projector", m.prior_projector, prior));
        var text = FeedForward(ctx, "glyph_projector", m.glyph_projector, glyphStates);
        var lg = Dim(text, 1);

        OnnxValue temb;
        using (ctx.Enter("time_condition_embed"))
        {
            var te = Mlp(ctx, "timestep_embedder", m.time_condition_embed.timestep_embedder, Sinusoid(ctx, timestep, c.TimeEmbedDim));
            OnnxValue Column(OnnxValue v, long i) => ctx.Op("Gather", [v, ctx.Graph.Constant<long>([i])], OnnxAttribute.Int("axis", 1)); // (B)
            var cond = ctx.Concat(-1, Sinusoid(ctx, Column(crop, 0), c.ConditionDim), Sinusoid(ctx, Column(crop, 1), c.ConditionDim),
                Sinusoid(ctx, Column(targetSize, 0), c.ConditionDim), Sinusoid(ctx, Column(targetSize, 1), c.ConditionDim));
            temb = ctx.Silu(ctx.Add(te, Mlp(ctx, "condition_embedder", m.time_condition_embed.condition_embedder, cond)));  // (B, 512)
        }
        var (cos, sin) = Rotary(ctx, hp, wp, c.HeadDim);
        var unitD = ctx.Graph.Constant<float>(Enumerable.Repeat(1f, d).ToArray(), d);
        var unitHead = ctx.Graph.Constant<float>(Enumerable.Repeat(1f, c.HeadDim).ToArray(), c.HeadDim);
        OnnxValue Norm(OnnxValue v, OnnxValue unit) => ctx.Op("LayerNormalization", [v, unit], OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", (float)GlmImageDit.NormEps));
        OnnxValue Modulate(OnnxValue v, OnnxValue scale, OnnxValue shift) => ctx.Add(ctx.Mul(Norm(v, unitD), ctx.Add(scale, ctx.F32(1f))), shift);
        var end = ctx.I64(long.MaxValue);
        var axis1 = ctx.I64(1);
        var axis2 = ctx.I64(2);
        var zero = ctx.I64(0);

        for (int i = 0; i < m.transformer_blocks.Count; i++)
        {
            var block = m.transformer_blocks[i];
            using var _ = ctx.Enter($"transformer_blocks.{i}");
            var mod = ctx.Split(ctx.Unsqueeze(ctx.Module("norm1.linear", block.norm1.linear, temb), 1), 12, -1);       // 12 x (B, 1, D)
            var joint = ctx.Concat(1, Modulate(text, mod[3], mod[1]), Modulate(x, mod[2], mod[0]));                   // glyphs first
            OnnxValue y;
            using (ctx.Enter("attn1"))
            {
                OnnxValue Heads(string name, TorchSharp.Modules.Linear proj, bool norm)
                {
                    var h = ctx.Reshape(ctx.Module(name, proj, joint), 0, 0, c.Heads, c.HeadDim);                        // (B, S, H, Dh)
                    return ctx.Transpose(norm ? Norm(h, unitHead) : h, 0, 2, 1, 3);                                        // (B, H, S, Dh)
                }
                OnnxValue Rope(OnnxValue t)
                {
                    var glyphs = ctx.Op("Slice", t, zero, lg, axis2);
                    var image = ctx.Op("Slice", t, lg, end, axis2);
                    return ctx.Concat(2, glyphs, AttentionOps.ApplyRotary(ctx, image, cos, sin, c.HeadDim, c.HeadDim));
                }
                var q = Rope(Heads("to_q", block.attn1.to_q, norm: true));
                var k = Rope(Heads("to_k", block.attn1.to_k, norm: true));
                var v = Heads("to_v", block.attn1.to_v, norm: false);
                y = ctx.Module("to_out.0", block.attn1.Out, AttentionOps.ScaledDotProduct(ctx, q, k, v, c.Heads, c.Heads, c.HeadDim, null));
            }
            text = ctx.Add(text, ctx.Mul(mod[5], ctx.Op("Slice", y, zero, lg, axis1)));
            x = ctx.Add(x, ctx.Mul(mod[4], ctx.Op("Slice", y, lg, end, axis1)));
            x = ctx.Add(x, ctx.Mul(mod[10], FeedForward(ctx, "ff", block.ff, Modulate(x, mod[8], mod[6]))));
            text = ctx.Add(text, ctx.Mul(mod[11], FeedForward(ctx, "ff", block.ff, Modulate(text, mod[9], mod[7]))));
        }
        var fm = ctx.Split(ctx.Unsqueeze(ctx.Module("norm_out.linear", m.norm_out.linear, temb), 1), 2, -1);             // scale, shift
        var tokens = ctx.Module("proj_out", m.proj_out, Modulate(x, fm[0], fm[1]));                                       // (B, N, C·p·p)
        var grid = ctx.Op("Reshape", tokens, ctx.Concat(0, ctx.I64(0), hp, wp, ctx.I64(c.OutChannels, p, p)));
        var velocity = ctx.Op("Reshape", ctx.Transpose(grid, 0, 3, 1, 4, 2, 5), ctx.Concat(0, ctx.I64(0, c.OutChannels), Dim(latents, 2), Dim(latents, 3)));
        g.Output(velocity, "velocity", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.OutChannels, "height", "width"));
        g.Metadata("tessera.stage", "glm-image-dit").Metadata("tessera.layers", $"{m.transformer_blocks.Count} of {c.Layers}");
        return g.Build();
    }

    /// <summary>net.0.proj → activation → net.2 (the weights keep diffusers' names).</summary>
    private static OnnxValue FeedForward(ExportContext ctx, string name, FeedForwardNet f, OnnxValue x)
    {
        using var _ = ctx.Enter(name);
        var h = ctx.Module("net.0.proj", f.First, x);
        h = f.Activation switch
        {
            FeedForwardActivation.Gelu => StockMappings.Gelu(ctx, h, tanh: false),
            FeedForwardActivation.GeluTanh => StockMappings.Gelu(ctx, h, tanh: true),
            _ => ctx.Silu(h),
        };
        return ctx.Module("net.2", f.Last, h);
    }

    private static OnnxValue Mlp(ExportContext ctx, string name, TimestepMlp mlp, OnnxValue x)
    {
        using var _ = ctx.Enter(name);
        return ctx.Module("linear_2", mlp.linear_2, ctx.Silu(ctx.Module("linear_1", mlp.linear_1, x)));
    }

    /// <summary>[cos(t f), sin(t f)] (B, dim) for t (B), f_k = 10000^(−k/(dim/2)).</summary>
    private static OnnxValue Sinusoid(ExportContext ctx, OnnxValue t, int dim)
    {
        int half = dim / 2;
        var f = Enumerable.Range(0, half).Select(k => (float)Math.Exp(-Math.Log(10000.0) * k / half)).ToArray();
        var args = ctx.Mul(ctx.Unsqueeze(t, -1), ctx.Graph.Constant<float>(f, half));
        return ctx.Concat(-1, ctx.Op("Cos", args), ctx.Op("Sin", args));
    }

    /// <summary>2-D rotary tables (1, 1, Hp·Wp, Dh) for the image grid, as <see cref="GlmImageDit.Rotary"/>.</summary>
    private static (OnnxValue Cos, OnnxValue Sin) Rotary(ExportContext ctx, OnnxValue hp, OnnxValue wp, int headDim)
    {
        int axisDim = headDim / 2, quarter = axisDim / 2;
        var f = ctx.Graph.Constant<float>(Enumerable.Range(0, quarter).Select(k => (float)Math.Pow(10000.0, -(2.0 * k) / axisDim)).ToArray(), quarter);
        OnnxValue Angles(OnnxValue count) => ctx.Mul(ctx.Unsqueeze(ctx.Cast(ctx.Op("Range", ctx.Graph.Constant<long>([0]), ctx.Op("Squeeze", count, ctx.I64(0)), ctx.Graph.Constant<long>([1])), TensorElementType.Float32), -1), f);
        var shape = ctx.Concat(0, hp, wp, ctx.I64(quarter));
        var rows = ctx.Op("Expand", ctx.Unsqueeze(Angles(hp), 1), shape);                       // (Hp, Wp, Dh/4)
        var cols = ctx.Op("Expand", ctx.Unsqueeze(Angles(wp), 0), shape);
        var phi = ctx.Reshape(ctx.Concat(-1, rows, cols), -1, axisDim);                           // (N, Dh/2)
        var emb = ctx.Unsqueeze(ctx.Concat(-1, phi, phi), 0, 1);                                  // (1, 1, N, Dh)
        return (ctx.Op("Cos", emb), ctx.Op("Sin", emb));
    }
}
