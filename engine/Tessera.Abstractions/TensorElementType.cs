namespace Tessera.Abstractions;

/// <summary>Element types a tensor can hold. Values equal ONNX's <c>TensorProto.DataType</c> numbers.</summary>
public enum TensorElementType
{
    Float32 = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
    BFloat16 = 16,
}

/// <summary>Sizes and CLR types of <see cref="TensorElementType"/>s.</summary>
public static class TensorElementTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this TensorElementType type) => type switch
    {
        TensorElementType.Float32 or TensorElementType.Int32 => 4,
        TensorElementType.Int64 => 8,
        TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
        TensorElementType.UInt8 or TensorElementType.Int8 or TensorElementType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown tensor element type."),
    };

    /// <summary>The element type for a CLR type (<c>float</c>, <c>long</c>, <c>Half</c>, ...).</summary>
    public static TensorElementType Of<T>() where T : unmanaged => Of(typeof(T));

    /// <summary>The element type for a CLR type, or an exception naming the type.</summary>
    public static TensorElementType Of(Type type) =>
        type == typeof(float) ? TensorElementType.Float32 :
        type == typeof(long) ? TensorElementType.Int64 :
        type == typeof(int) ? TensorElementType.Int32 :
        type == typeof(Half) ? TensorElementType.Float16 :
        type == typeof(byte) ? TensorElementType.UInt8 :
        type == typeof(sbyte) ? TensorElementType.Int8 :
        type == typeof(bool) ? TensorElementType.Bool :
        type == typeof(BFloat16Bits) ? TensorElementType.BFloat16 :
        throw new NotSupportedException($"{type.Name} has no tensor element type; use float, long, int, Half, byte, sbyte, bool or BFloat16Bits.");

    /// <summary>The CLR type for an element type.</summary>
    public static Type ClrType(this TensorElementType type) => type switch
    {
        TensorElementType.Float32 => typeof(float),
        TensorElementType.Int64 => typeof(long),
        TensorElementType.Int32 => typeof(int),
        TensorElementType.Float16 => typeof(Half),
        TensorElementType.UInt8 => typeof(byte),
        TensorElementType.Int8 => typeof(sbyte),
        TensorElementType.Bool => typeof(bool),
        TensorElementType.BFloat16 => typeof(BFloat16Bits),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown tensor element type."),
    };

    /// <summary>ONNX-style lowercase name (<c>float</c>, <c>int64</c>, <c>float16</c>...).</summary>
    public static string OnnxName(this TensorElementType type) => type switch
    {
        TensorElementType.Float32 => "float",
        TensorElementType.Int64 => "int64",
        TensorElementType.Int32 => "int32",
        TensorElementType.Float16 => "float16",
        TensorElementType.BFloat16 => "bfloat16",
        TensorElementType.UInt8 => "uint8",
        TensorElementType.Int8 => "int8",
        TensorElementType.Bool => "bool",
        _ => type.ToString(),
    };
}

/// <summary>The raw 16 bits of a bfloat16 value (the .NET base library has no bfloat16 type).</summary>
public readonly record struct BFloat16Bits(ushort Bits)
{
    /// <summary>Rounds a float to the nearest bfloat16 (ties to even).</summary>
    public static BFloat16Bits FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return new BFloat16Bits(0x7FC0);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return new BFloat16Bits((ushort)((bits + rounding) >> 16));
    }

    /// <summary>The exact float value.</summary>
    public float ToSingle() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);
}
