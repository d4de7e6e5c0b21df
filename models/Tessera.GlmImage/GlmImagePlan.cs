using Tessera.Export.Checkpoints;

namespace Tessera.GlmImage;

/// <summary>One stage's size: parameters and weight bytes at each precision (from the safetensors headers alone).</summary>
public sealed record StagePlan(string Stage, string Component, long Parameters, long Fp32Bytes, long Fp16Bytes, long Int8Bytes, long Int4Bytes, long NotUsedParameters);

/// <summary>
/// <c>tessera import glm-image … --plan</c>: each stage's parameter count and weight bytes at fp32 / fp16 / int8 /
/// int4, read from the safetensors headers (no weights are loaded), with the layer slice applied. int8 / int4 count
/// MatMul weights (2-D, input width ≥ 64, not embeddings) as 8 / 4 bits plus one fp32 scale per block of 32, and the
/// rest as fp32, as the MatMulNBits variants store them.
/// </summary>
public static class GlmImagePlan
{
    public static IReadOnlyList<StagePlan> Compute(string snapshot, int? layers)
    {
        GlmImageImporter.OpenIndex(snapshot);
        var stages = new List<StagePlan>();
        foreach (var (stage, component) in new[] { ("ar", "vision_language_encoder"), ("decoder", "transformer"), ("vae", "vae"), ("glyph-encoder", "text_encoder") })
        {
            var checkpoint = HfCheckpoint.Open(Path.Combine(snapshot, component));
            if (checkpoint.Format != "safetensors")
                throw new CheckpointException($"{component}: --plan reads safetensors headers; this folder has {checkpoint.Format} weights.");
            long parameters = 0, fp32 = 0, fp16 = 0, int8 = 0, int4 = 0, notUsed = 0;
            foreach (var file in checkpoint.WeightFiles)
                foreach (var t in SafetensorsHeader.Read(file))
                {
                    if (!Used(stage, t.Name, layers)) { notUsed += t.Elements; continue; }
                    parameters += t.Elements;
                    fp32 += 4 * t.Elements;
                    fp16 += 2 * t.Elements;
                    bool matmul = t.Shape.Length == 2 && t.Shape[1] >= 64 && !t.Name.Contains("embed", StringComparison.Ordinal);
                    int8 += matmul ? t.Elements + t.Elements / 32 * 4 : 4 * t.Elements;
                    int4 += matmul ? t.Elements / 2 + t.Elements / 32 * 4 : 4 * t.Elements;
                }
            stages.Add(new StagePlan(stage, component, parameters, fp32, fp16, int8, int4, notUsed));
        }
        return stages;
    }

    /// <summary>Whether the import uses a tensor: the same rules as the stage exporters (image-to-image parts and layers beyond the slice are not).</summary>
    private static bool Used(string stage, string name, int? layers) => stage switch
    {
        "ar" => !GlmImageTensorNames.IsArImageToImage(name) && !GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.ArLayers, layers),
        "decoder" => !GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.DitLayers, layers),
        "glyph-encoder" => !GlmImageTensorNames.BeyondSlice(name, GlmImageTensorNames.T5Layers, layers),
        "vae" => !GlmImageTensorNames.IsVaeEncoder(name),
        _ => true,
    };
}
