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

    private static bool Used(string stage, string name, int? layers)
    {
        if (stage == "ar" && (name.StartsWith("model.visual.", StringComparison.Ordinal) || name.StartsWith("model.vqmodel.", StringComparison.Ordinal))) return false;
        if (stage == "vae" && (name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("quant_conv.", StringComparison.Ordinal))) return false;
        if (layers is { } n)
            foreach (var prefix in new[] { "model.language_model.layers.", "transformer_blocks." })
                if (name.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(name.AsSpan(prefix.Length, name.IndexOf('.', prefix.Length) - prefix.Length), out var i) && i >= n)
                    return false;
        return true;
    }
}
