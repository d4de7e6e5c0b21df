using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>A tensor held by ONNX Runtime (an <see cref="OrtValue"/> in the device's memory). Owns the value.</summary>
internal sealed class OrtDeviceTensor : IDeviceTensor
{
    private OrtValue? _value;

    public OrtDeviceTensor(DeviceId device, OrtValue value, bool hostAccessible)
    {
        Device = device;
        _value = value;
        HostAccessible = hostAccessible;
        var info = value.GetTensorTypeAndShape();
        ElementType = OrtTypes.FromOrt(info.ElementDataType, "Output tensor");
        Shape = info.Shape;
    }

    public DeviceId Device { get; }
    public TensorElementType ElementType { get; }
    public long[] Shape { get; }

    /// <summary>True when the memory is directly readable by the CPU (CPU EP, or pinned host memory).</summary>
    public bool HostAccessible { get; }

    /// <summary>The underlying value, still owned by this tensor.</summary>
    public OrtValue Value => _value ?? throw new ObjectDisposedException(nameof(OrtDeviceTensor), $"A {ElementType.OnnxName()}[{string.Join(", ", Shape)}] tensor on {Device} was used after it was disposed.");

    public HostTensor ToHost()
    {
        var host = HostTensor.Zeros(ElementType, Shape);
        ReadRaw().CopyTo(host.AsBytes());
        return host;
    }

    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        if (TensorElementTypes.Of<T>() != ElementType)
            throw new InvalidCastException($"Tensor on {Device} holds {ElementType.OnnxName()}, not {typeof(T).Name}.");
        var raw = ReadRaw();
        var count = raw.Length / ElementType.SizeOf();
        if (destination.Length != count)
            throw new ArgumentException($"Destination holds {destination.Length} elements; the tensor has {count}.", nameof(destination));
        raw.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination));
    }

    public void CopyTo<T>(long offset, Span<T> destination) where T : unmanaged
    {
        if (TensorElementTypes.Of<T>() != ElementType)
            throw new InvalidCastException($"Tensor on {Device} holds {ElementType.OnnxName()}, not {typeof(T).Name}.");
        var all = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(ReadRaw());
        if (offset < 0 || offset + destination.Length > all.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Elements {offset}..{offset + destination.Length} are outside the tensor's {all.Length}.");
        all.Slice((int)offset, destination.Length).CopyTo(destination);
    }

    private ReadOnlySpan<byte> ReadRaw()
    {
        if (!HostAccessible)
            throw new NotSupportedException($"Tensor on {Device} is in device memory; copy it through the device before reading.");
        return Value.GetTensorMutableRawData();
    }

    public void Dispose()
    {
        _value?.Dispose();
        _value = null;
    }
}
