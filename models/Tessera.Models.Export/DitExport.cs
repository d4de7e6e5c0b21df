using Tessera.Export;
using Tessera.Abstractions;
using Tessera.Models;
using Tessera.Models.Dit;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Models.Export;

/// <summary>
/// The DiT decoder as one graph: inputs <c>x_t</c> (batch, 3, S, S) float, <c>t</c> (batch) float,
/// <c>prior</c> (batch, G, G) int64, <c>glyphs</c> (batch, MaxGlyphs) int64 and, for decoders with
/// <see cref="DitConfig.GlyphImage"/>, <c>glyph_image</c> (batch, 1, S, S) float → <c>velocity</c> (batch, 3, S, S).
/// Conditional and unconditional (CFG) branches run as one batch.
/// </summary>
public static class DitExport
{
    public static ModelProto Export(DitDecoder model, string graphName = "tessera_decoder", int opset = ExportContext.DefaultOpset)
    {
        var c = model.Config;
        int n = c.TokenGrid * c.TokenGrid, lg = c.MaxGlyphs, p = c.Patch, gsz = c.TokenGrid;
        var ctx = new ExportContext(graphName, opset);
        var g = ctx.Graph;
        var xt = g.Input("x_t", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3, c.ImageSize, c.ImageSize));
        var t = g.Input("t", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch"));
        var prior = g.Input("prior", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", gsz, gsz));
        var glyphs = g.Input("glyphs", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", lg));
        var input = xt;
        if (c.GlyphImage) input = ctx.Concat(1, xt, g.Input("glyph_image", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 1, c.ImageSize, c.ImageSize)));

        var image = ctx.Transpose(ctx.Reshape(ctx.Module("patch_embed", model.patch_embed, input), 0, c.Hidden, -1), 0, 2, 1); // (B, N, D)
        var priorFlat = ctx.Reshape(prior, 0, -1);                                                                          // (B, N)
        image = ctx.Add(ctx.Add(image, ctx.Weight("pos_embed", model.pos_embed)), ctx.Module("prior_embed", model.prior_embed, priorFlat));
        var glyph = ctx.Add(ctx.Module("glyph_embed", model.glyph_embed, glyphs), ctx.Weight("glyph_pos_embed", model.glyph_pos_embed));
        var x = ctx.Concat(1, glyph, image);                                                                                 // (B, L + N, D)

        // Keys: glyph padding (id 0) is masked; image tokens always count (prior == prior is all true, shaped (B, N)).
        var keyValid = ctx.Concat(1, ctx.Op("Not", ctx.Op("Equal", glyphs, ctx.Graph.Constant<long>([0]))), ctx.Op("Equal", priorFlat, priorFlat));
        var mask = ctx.Unsqueeze(keyValid, 1, 2);                                                                            // (B, 1, 1, L + N)
        var cond = ctx.Module("time_embed", model.time_embed, t);                                                            // (B, D)
        var condAct = ctx.Silu(cond);

        for (int i = 0; i < model.blocks.Count; i++)
        {
            var block = model.blocks[i];
            using var _ = ctx.Enter($"blocks.{i}");
            var m = ctx.Split(ctx.Unsqueeze(ctx.Module("adaLN_modulation", block.adaLN_modulation, condAct), 1), 6, -1); // 6 x (B, 1, D)
            var h = ctx.Add(ctx.Mul(ctx.Module("norm1", block.norm1, x), ctx.Add(m[1], ctx.F32(1f))), m[0]);
            var (attn, _, _) = AttentionExport.Export(ctx, "attn", block.attn, h, null, mask, null, null);
            x = ctx.Add(x, ctx.Mul(m[2], attn));
            h = ctx.Add(ctx.Mul(ctx.Module("norm2", block.norm2, x), ctx.Add(m[4], ctx.F32(1f))), m[3]);
            var mlp = ctx.Module("mlp_fc2", block.mlp_fc2, StockMappings.Gelu(ctx, ctx.Module("mlp_fc1", block.mlp_fc1, h), tanh: true));
            x = ctx.Add(x, ctx.Mul(m[5], mlp));
        }

        x = ctx.Slice(x, lg, lg + n, 1);                                                                                    // image tokens
        var fm = ctx.Split(ctx.Unsqueeze(ctx.Module("final_modulation", model.final_modulation, condAct), 1), 2, -1);
        x = ctx.Module("final_proj", model.final_proj, ctx.Add(ctx.Mul(ctx.Module("final_norm", model.final_norm, x), ctx.Add(fm[1], ctx.F32(1f))), fm[0]));
        // (B, G*G, p*p*3) → (B, G, G, p, p, 3) → (B, 3, G, p, G, p) → (B, 3, S, S)
        var y = ctx.Reshape(ctx.Transpose(ctx.Reshape(x, 0, gsz, gsz, p, p, 3), 0, 5, 1, 3, 2, 4), 0, 3, c.ImageSize, c.ImageSize);
        g.Output(y, "velocity", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3, c.ImageSize, c.ImageSize));
        g.Metadata("tessera.stage", "decoder").Metadata("tessera.config", System.Text.Json.JsonSerializer.Serialize(c, StageConfig.Json));
        return g.Build();
    }
}
