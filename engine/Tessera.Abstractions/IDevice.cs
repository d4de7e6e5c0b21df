namespace Tessera.Abstractions;

/// <summary>
/// One device that can compile and run ONNX graphs. Thread-safe: the host may compile and run from several threads.
/// </summary>
public interface IDevice
{
    /// <summary>Identity, memory, capabilities and availability.</summary>
    DeviceInfo Info { get; }

    /// <summary>
    /// Answers which nodes of a graph this device would run and which would fall back to the CPU, without
    /// compiling for execution. Never throws for an unsupported graph: it says so in the report.
    /// </summary>
    GraphSupportReport CheckSupport(ModelSource model, CompileOptions options);

    /// <summary>
    /// Compiles (optimizes) a graph into an executable model. Throws <see cref="ModelLoadException"/> for an
    /// unreadable or invalid model and <see cref="DeviceUnavailableException"/> when the device is unavailable.
    /// Under <see cref="FallbackPolicy.Strict"/> a graph with nodes the device cannot run is refused with
    /// <see cref="FallbackNotAllowedException"/>.
    /// </summary>
    ICompiledModel Compile(ModelSource model, CompileOptions options);

    /// <summary>Copies a host tensor into device memory. The result is owned by the caller.</summary>
    IDeviceTensor CopyToDevice(HostTensor tensor);
}
