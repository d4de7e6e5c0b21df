using System.Runtime.InteropServices;
using Google.Protobuf;
using Tessera.Abstractions;
using Tessera.Onnx.Proto;

namespace Tessera.Onnx;

/// <summary>Conversions between typed arrays and <see cref="TensorProto"/> (little-endian <c>raw_data</c>).</summary>
public static class OnnxTensors
{
    /// <summary>A tensor proto holding a copy of <paramref name="data"/> as raw little-endian bytes.</summary>
    public static TensorProto Create<T>(string name, ReadOnlySpan<T> data, ReadOnlySpan<long> shape) where T : unmanaged
    {
        long count = HostTensor.ElementCountOf(shape);
        if (count != data.Length)
            throw new ArgumentException($"Initializer '{name}': shape [{string.Join(", ", shape.ToArray())}] holds {count} elements but {data.Length} were given.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian; big-endian hosts are not supported.");
        var t = new TensorProto
        {
            Name = name,
            DataType = (int)TensorElementTypes.Of<T>(),
            RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)),
        };
        t.Dims.AddRange(shape.ToArray());
        return t;
    }

    /// <summary>The element type of a tensor proto, or an exception naming the unsupported ONNX type number.</summary>
    public static TensorElementType ElementType(TensorProto t) =>
        Enum.IsDefined(typeof(TensorElementType), t.DataType)
            ? (TensorElementType)t.DataType
            : throw new NotSupportedException($"Tensor '{t.Name}' has ONNX data type {t.DataType}, which Tessera does not handle.");

    /// <summary>Reads a tensor proto's values (raw_data or the typed repeated fields). External data must be loaded first.</summary>
    public static T[] ToArray<T>(TensorProto t) where T : unmanaged
    {
        if (TensorElementTypes.Of<T>() != ElementType(t))
            throw new InvalidCastException($"Tensor '{t.Name}' holds {ElementType(t).OnnxName()}, not {typeof(T).Name}.");
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidOperationException($"Tensor '{t.Name}' lives in external data; load the model with OnnxModelFile.Load to resolve it.");
        if (!t.RawData.IsEmpty) return MemoryMarshal.Cast<byte, T>(t.RawData.Span).ToArray();
        object values = typeof(T) switch
        {
            var x when x == typeof(float) => t.FloatData.ToArray(),
            var x when x == typeof(long) => t.Int64Data.ToArray(),
            var x when x == typeof(int) => t.Int32Data.ToArray(),
            _ => throw new NotSupportedException($"Tensor '{t.Name}': reading {typeof(T).Name} from typed fields is not supported; use raw_data."),
        };
        return (T[])values;
    }

    /// <summary>Size of the tensor's payload in bytes.</summary>
    public static long PayloadBytes(TensorProto t) =>
        t.RawData.Length + t.FloatData.Count * 4L + t.Int32Data.Count * 4L + t.Int64Data.Count * 8L + t.DoubleData.Count * 8L;
}
