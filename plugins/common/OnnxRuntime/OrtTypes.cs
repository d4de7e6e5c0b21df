using Tessera.Abstractions;
using OrtElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>Mappings between Tessera and ONNX Runtime types.</summary>
internal static class OrtTypes
{
    // Both enums use ONNX's TensorProto.DataType numbers.
    public static OrtElementType ToOrt(TensorElementType t) => (OrtElementType)(int)t;

    public static TensorElementType FromOrt(OrtElementType t, string what) =>
        Enum.IsDefined(typeof(TensorElementType), (int)t)
            ? (TensorElementType)(int)t
            : throw new NotSupportedException($"{what} has ONNX Runtime element type {t}, which Tessera does not handle.");

    public static Microsoft.ML.OnnxRuntime.GraphOptimizationLevel ToOrt(OptimizationLevel level) => level switch
    {
        OptimizationLevel.None => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        OptimizationLevel.Basic => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        OptimizationLevel.Extended => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        _ => Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    };

    public static TensorSpec Spec(string name, Microsoft.ML.OnnxRuntime.NodeMetadata meta)
    {
        if (!meta.IsTensor) throw new NotSupportedException($"Model value '{name}' is a {meta.OnnxValueType}; Tessera runs tensor inputs and outputs only.");
        var dims = new Dimension[meta.Dimensions.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            var symbol = meta.SymbolicDimensions.Length > i ? meta.SymbolicDimensions[i] : "";
            dims[i] = meta.Dimensions[i] >= 0 ? Dimension.Fixed(meta.Dimensions[i]) : Dimension.Symbolic(string.IsNullOrEmpty(symbol) ? "?" : symbol);
        }
        return new TensorSpec(name, FromOrt(meta.ElementDataType, $"Model value '{name}'"), dims);
    }
}
