using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Export;

/// <summary>
/// A weight variant written beside the fp32 model and validated on its own, against the same reference outputs,
/// with its own tolerance: file suffix, description, the transform of the fp32 graph, and the tolerance.
/// </summary>
public sealed record ExportVariant(string Suffix, string Description, Func<ModelProto, ModelProto> Transform, double Tolerance)
{
    /// <summary>
    /// fp16 weights: rounding each weight to 11 significant bits moves outputs by roughly 1e-3 of their scale;
    /// 5e-2 absolute still catches any structural error (those are O(1)).
    /// </summary>
    public static ExportVariant Fp16 { get; } = new("fp16", "fp16 weights (stored float16, computed float32)", m => OnnxVariants.ToFloat16Weights(m), 5e-2);

    /// <summary>
    /// int8 weights (8-bit codes per block of 32, one scale per block): weight error up to 1/254 of each block's
    /// largest magnitude gives output errors of a few 1e-2; 0.25 absolute on logits still catches a wrong layout or
    /// scale (those give errors of order 1 and more).
    /// </summary>
    public static ExportVariant Int8 { get; } = new("int8",
        "int8 weights (com.microsoft.MatMulNBits, 8 bits, block 32, accuracy_level 4: activations quantized to int8 per block)",
        m => OnnxVariants.ToInt8Weights(m), 0.25);

    /// <summary>
    /// int4 weights (4-bit codes per block of 32): 16 levels per block make the weight error up to 1/14 of the
    /// block's largest magnitude, about 18 times int8's, so logits move by a few tenths; 1.0 absolute still catches
    /// a wrong layout (errors of many units).
    /// </summary>
    public static ExportVariant Int4 { get; } = new("int4",
        "int4 weights (com.microsoft.MatMulNBits, 4 bits, block 32, accuracy_level 4)",
        m => OnnxVariants.ToNBitWeights(m, bits: 4), 1.0);
}

/// <summary>What an export wrote and how parity went.</summary>
public sealed record ExportResult(string Name, string ModelPath, string? ExternalDataPath, long Bytes, IReadOnlyList<OutputParity> Parity, string ReportPath)
{
    public bool Passed => Parity.All(p => p.Passed);

    /// <summary>Variants written beside the fp32 model (fp16 weights, int8 / int4 weights), each validated on its own.</summary>
    public IReadOnlyList<ExportResult> Variants { get; init; } = [];
}
