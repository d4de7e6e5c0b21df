using System.Runtime.InteropServices;

namespace Tessera.Abstractions;

/// <summary>
/// A dense, row-major tensor in managed memory. Wraps the given array without copying: the array belongs
/// to the caller, and devices read it in place during a run (they never keep it after the run returns).
/// </summary>
public sealed class HostTensor : ITensorValue
{
    private HostTensor(Array data, TensorElementType type, long[] shape)
    {
        Data = data;
        ElementType = type;
        Shape = shape;
    }

    /// <summary>The backing array (<c>float[]</c>, <c>long[]</c>, <c>Half[]</c>, ...).</summary>
    public Array Data { get; }

    public TensorElementType ElementType { get; }

    public long[] Shape { get; }

    /// <summary>Number of elements (product of the shape).</summary>
    public long ElementCount => ElementCountOf(Shape);

    /// <summary>Wraps <paramref name="data"/> (not copied) with the given shape.</summary>
    public static HostTensor Create<T>(T[] data, params long[] shape) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        long count = ElementCountOf(shape);
        if (count != data.Length)
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} elements but the array has {data.Length}.", nameof(shape));
        return new HostTensor(data, TensorElementTypes.Of<T>(), (long[])shape.Clone());
    }

    /// <summary>Most elements a host tensor can hold (a managed array's limit); checked before allocating.</summary>
    public static long MaxElements => Array.MaxLength;

    /// <summary>
    /// A zero-filled tensor of the given type and shape. Throws <see cref="ArgumentException"/> naming the shape,
    /// before allocating, when the element count overflows or exceeds <see cref="MaxElements"/>.
    /// </summary>
    public static HostTensor Zeros(TensorElementType type, params long[] shape)
    {
        long count;
        try { count = ElementCountOf(shape); }
        catch (OverflowException) { throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has more elements than a 64-bit count holds; check the dimensions.", nameof(shape)); }
        if (count > MaxElements)
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} elements; a host tensor holds at most {MaxElements}. Use smaller dimensions.", nameof(shape));
        var data = Array.CreateInstance(type.ClrType(), (int)count);
        return new HostTensor(data, type, (long[])shape.Clone());
    }

    /// <summary>The elements as a span over the backing array (no copy). <typeparamref name="T"/> must match the element type.</summary>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (Data is not T[] typed)
            throw new InvalidCastException($"Tensor holds {ElementType.OnnxName()}, not {typeof(T).Name}.");
        return typed;
    }

    /// <summary>The elements as raw bytes (no copy).</summary>
    public Span<byte> AsBytes() => MemoryMarshal.CreateSpan(
        ref MemoryMarshal.GetArrayDataReference(Data), checked(Data.Length * ElementType.SizeOf()));

    /// <summary>Product of a shape's dimensions; throws on negative sizes.</summary>
    public static long ElementCountOf(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"Negative dimension {d} in a tensor shape.", nameof(shape));
            n = checked(n * d);
        }
        return n;
    }

    public override string ToString() => $"HostTensor {ElementType.OnnxName()}[{string.Join(", ", Shape)}]";
}
