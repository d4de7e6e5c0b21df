using Tessera.Export;
using Tessera.Abstractions;
using Tessera.Models;
using Tessera.Models.Vq;
using Tessera.Onnx;
using Tessera.Onnx.Proto;
using static TorchSharp.torch;

namespace Tessera.Models.Export;

/// <summary>
/// The VQ encoder as a graph: <c>image</c> (batch, 3, S, S) float in [-1, 1] → <c>codes</c> (batch, G, G) int64,
/// the nearest codebook entry by cosine similarity. Used for image-to-image.
/// </summary>
public static class VqExport
{
    public static ModelProto ExportEncoder(VqTokenizer model, string graphName = "tessera_vq_encoder", int opset = ExportContext.DefaultOpset)
    {
        var c = model.Config;
        var ctx = new ExportContext(graphName, opset);
        var g = ctx.Graph;
        var image = g.Input("image", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3, c.ImageSize, c.ImageSize));
        var z = ctx.Module("encoder", model.encoder, image);                                                     // (B, D, G, G)
        var zt = ctx.Transpose(z, 0, 2, 3, 1);                                                                   // (B, G, G, D)
        // Encodings are L2-normalised before the lookup; argmax over cosine similarity ignores the encoding's own
        // norm, so only the codebook (a constant) needs normalising.
        using var book = nn.functional.normalize(model.codebook.detach(), dim: 1);
        Tessera.Onnx.OnnxValue bookT;
        using (ctx.Enter("codebook")) bookT = ctx.Weight("normalized_t", book.t());                               // (D, K)
        var sim = ctx.MatMul(zt, bookT);                                                                         // (B, G, G, K)
        var codes = ctx.Op("ArgMax", [sim], OnnxAttribute.Int("axis", -1), OnnxAttribute.Int("keepdims", 0));     // (B, G, G)
        g.Output(codes, "codes", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", c.GridSize, c.GridSize));
        g.Metadata("tessera.stage", "vq_encoder").Metadata("tessera.config", System.Text.Json.JsonSerializer.Serialize(c, StageConfig.Json));
        return g.Build();
    }
}
