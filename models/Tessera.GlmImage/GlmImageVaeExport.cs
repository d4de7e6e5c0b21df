using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Export;
using Tessera.Export.Checkpoints;
using Tessera.Onnx;
using Tessera.Onnx.Proto;
using static TorchSharp.torch;

namespace Tessera.GlmImage;

public sealed record GlmImageVaeExportResult(GlmImageVaeConfig Config, ExportResult Model, LoadReport Weights, int EncoderTensors);

/// <summary>
/// The VAE decoder as ONNX (<c>vae_decoder.onnx</c>): input <c>latents</c> float (batch, C, h, w) — the DiT's
/// normalised latents — output <c>image</c> float (batch, 3, h·s, w·s) in [−1, 1]; dynamic in batch and size.
/// Exported from the official <c>vae</c> folder; the encoder's tensors (image-to-image) are counted, not loaded.
/// </summary>
public static class GlmImageVaeExport
{
    public const double Fp32Tolerance = 1e-4;

    public static ModelProto Build(GlmImageVaeDecoder m, int opset = ExportContext.DefaultOpset)
    {
        var c = m.Config;
        var ctx = new ExportContext("glm_image_vae_decoder", opset);
        var g = ctx.Graph;
        var latents = g.Input("latents", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.LatentChannels, "height", "width"));
        var (scale, offset) = m.Denormalisation();
        var z = ctx.Add(ctx.Mul(latents, ctx.Graph.Constant<float>(scale, 1, c.LatentChannels, 1, 1)), ctx.Graph.Constant<float>(offset, 1, c.LatentChannels, 1, 1));
        if (m.post_quant_conv is not null) z = ctx.Module("post_quant_conv", m.post_quant_conv, z);
        OnnxValue x;
        using (ctx.Enter("decoder"))
        {
            var d = m.decoder;
            x = ctx.Module("conv_in", d.conv_in, z);
            x = Resnet(ctx, "mid_block.resnets.0", d.mid_block.resnets[0], x);
            for (int a = 0; a < d.mid_block.attentions.Count; a++) x = Attention(ctx, $"mid_block.attentions.{a}", d.mid_block.attentions[a], x);
            x = Resnet(ctx, "mid_block.resnets.1", d.mid_block.resnets[1], x);
            for (int b = 0; b < d.up_blocks.Count; b++)
            {
                var up = d.up_blocks[b];
                for (int j = 0; j < up.resnets.Count; j++) x = Resnet(ctx, $"up_blocks.{b}.resnets.{j}", up.resnets[j], x);
                for (int u = 0; u < up.upsamplers.Count; u++) x = ctx.Module($"up_blocks.{b}.upsamplers.{u}.conv", up.upsamplers[u].conv, Upsample2x(ctx, x));
            }
            x = ctx.Module("conv_out", d.conv_out, ctx.Silu(ctx.Module("conv_norm_out", d.conv_norm_out, x)));
        }
        g.Output(x, "image", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", c.OutChannels, "image_height", "image_width"));
        g.Metadata("tessera.stage", "glm-image-vae-decoder");
        return g.Build();
    }

    private static OnnxValue Resnet(ExportContext ctx, string name, VaeResnet r, OnnxValue x)
    {
        using var _ = ctx.Enter(name);
        var h = ctx.Module("conv1", r.conv1, ctx.Silu(ctx.Module("norm1", r.norm1, x)));
        h = ctx.Module("conv2", r.conv2, ctx.Silu(ctx.Module("norm2", r.norm2, h)));
        return ctx.Add(r.conv_shortcut is null ? x : ctx.Module("conv_shortcut", r.conv_shortcut, x), h);
    }

    private static OnnxValue Attention(ExportContext ctx, string name, VaeAttention a, OnnxValue x)
    {
        using var _ = ctx.Enter(name);
        long ch = a.to_q.weight!.shape[0];
        var t = ctx.Transpose(ctx.Reshape(ctx.Module("group_norm", a.group_norm, x), 0, ch, -1), 0, 2, 1);          // (B, HW, C)
        var q = ctx.Module("to_q", a.to_q, t);
        var k = ctx.Module("to_k", a.to_k, t);
        var v = ctx.Module("to_v", a.to_v, t);
        var scores = ctx.Mul(ctx.MatMul(q, ctx.Transpose(k, 0, 2, 1)), ctx.F32((float)(1.0 / Math.Sqrt(ch))));
        var y = ctx.Module("to_out.0", a.Out, ctx.MatMul(ctx.Softmax(scores, -1), v));                               // (B, HW, C)
        return ctx.Add(ctx.Op("Reshape", ctx.Transpose(y, 0, 2, 1), ctx.Op("Shape", x)), x);
    }

    /// <summary>Nearest ×2: (B, C, H, W) → (B, C, H, 1, W, 1) expanded to (…, 2, …, 2) → (B, C, 2H, 2W).</summary>
    private static OnnxValue Upsample2x(ExportContext ctx, OnnxValue x)
    {
        var shape = ctx.Op("Shape", x);
        var six = ctx.Unsqueeze(x, 3, 5);
        var expanded = ctx.Op("Expand", six, ctx.Concat(0, ctx.Slice(shape, 0, 3, 0), ctx.I64(2), ctx.Slice(shape, 3, 4, 0), ctx.I64(2)));
        var doubled = ctx.Mul(ctx.Slice(shape, 2, 4, 0), ctx.I64(2));
        return ctx.Op("Reshape", expanded, ctx.Concat(0, ctx.Slice(shape, 0, 2, 0), doubled));
    }

    public static GlmImageVaeExportResult Export(string vaeDir, string outDir, IReadOnlyList<ExportVariant>? variants = null, int opset = ExportContext.DefaultOpset, TextWriter? log = null)
    {
        log ??= TextWriter.Null;
        var checkpoint = HfCheckpoint.Open(vaeDir);
        var config = GlmImageVaeConfig.Parse(checkpoint.Config, Path.Combine(vaeDir, "config.json"));
        using var noGrad = no_grad();
        using var model = new GlmImageVaeDecoder(config);
        model.eval();
        int encoder = 0;
        bool Ignore(string name)
        {
            if (GlmImageTensorNames.IsVaeEncoder(name)) { encoder++; return true; }
            return false;
        }
        var weights = StateDictLoader.Load(model, vaeDir, checkpoint.ReadShards(), ignore: Ignore);
        var proto = Build(model, opset);
        var result = ValidatedExport.Write(proto, Path.Combine(outDir, "vae_decoder.onnx"), parity => Check(model, parity), variants ?? [], externalData: false, log, report =>
        {
            report["stage"] = "glm-image-vae-decoder";
            report["checkpoint"] = Path.GetFullPath(vaeDir);
            report["tensors"] = new JsonObject { ["consumed"] = weights.Consumed.Count, ["encoderNotUsed"] = encoder, ["missing"] = 0, ["unexpected"] = 0 };
        });
        return new GlmImageVaeExportResult(config, result, weights, encoder);
    }

    private static IReadOnlyList<OutputParity> Check(GlmImageVaeDecoder model, Parity parity)
    {
        var generator = new Generator(5);
        var rows = new List<OutputParity>();
        foreach (var (batch, h, w) in new[] { (2, 4, 6), (1, 3, 3) })
        {
            var z = randn([batch, model.Config.LatentChannels, h, w], generator: generator);
            rows.Add(Parity.Compare($"b{batch} {h}x{w}", "image", model.Forward(z), parity.Run(new Dictionary<string, Tensor> { ["latents"] = z })["image"], Fp32Tolerance));
        }
        return rows;
    }
}
