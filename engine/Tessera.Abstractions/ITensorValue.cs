namespace Tessera.Abstractions;

/// <summary>A tensor given to <see cref="ICompiledModel.Run"/>: a <see cref="HostTensor"/> or an <see cref="IDeviceTensor"/>.</summary>
public interface ITensorValue
{
    TensorElementType ElementType { get; }

    /// <summary>The shape. Do not modify.</summary>
    long[] Shape { get; }
}

/// <summary>
/// A tensor in device memory, owned by whoever received it (dispose it when done). It can be passed back to
/// <see cref="ICompiledModel.Run"/> of a model compiled on the same device without a copy — this is how state
/// such as a KV cache stays on the device between runs.
/// </summary>
public interface IDeviceTensor : ITensorValue, IDisposable
{
    /// <summary>The device holding the memory.</summary>
    DeviceId Device { get; }

    /// <summary>Copies the contents into a new host tensor.</summary>
    HostTensor ToHost();

    /// <summary>Copies the contents into <paramref name="destination"/>, whose length must equal the element count.</summary>
    void CopyTo<T>(Span<T> destination) where T : unmanaged;

    /// <summary>
    /// Copies <paramref name="destination"/>.Length elements starting at element <paramref name="offset"/> (row-major
    /// order) into <paramref name="destination"/>: a part of the tensor, e.g. the last position's logits of each row,
    /// without bringing the rest to the host. Added in contract 1.x with a default that copies the whole tensor
    /// through <see cref="ToHost"/>; a plugin whose memory the host can read overrides it to copy only the part.
    /// </summary>
    void CopyTo<T>(long offset, Span<T> destination) where T : unmanaged
    {
        var host = ToHost();
        var all = host.AsSpan<T>();
        if (offset < 0 || offset + destination.Length > all.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Elements {offset}..{offset + destination.Length} are outside the tensor's {all.Length}.");
        all.Slice((int)offset, destination.Length).CopyTo(destination);
    }
}
