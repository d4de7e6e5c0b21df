namespace Tessera.Abstractions;

/// <summary>Base of every error Tessera raises on purpose. Messages name the thing, what was wrong and what to do.</summary>
public class TesseraException : Exception
{
    public TesseraException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A model file or buffer could not be read or is not a valid ONNX graph for this device.</summary>
public sealed class ModelLoadException(string model, string problem, Exception? inner = null)
    : TesseraException($"Model '{model}' {problem}", inner)
{
    /// <summary>The model's display name (usually its path).</summary>
    public string Model { get; } = model;
}

/// <summary>A run was given inputs that do not match the model, or the device failed while running.</summary>
public sealed class ModelRunException(string message, Exception? inner = null) : TesseraException(message, inner);

/// <summary>The device exists in the registry but cannot be used now (missing driver, runtime or hardware).</summary>
public sealed class DeviceUnavailableException(DeviceId device, string reason)
    : TesseraException($"Device {device} is not available: {reason}")
{
    public DeviceId Device { get; } = device;
    public string Reason { get; } = reason;
}

/// <summary>Strict placement was asked, but parts of the graph cannot run on the chosen device.</summary>
public sealed class FallbackNotAllowedException(DeviceId device, string model, IReadOnlyList<NodePlacement> fallbackNodes, string? detail = null)
    : TesseraException(
        $"Model '{model}' cannot run entirely on {device}: " +
        (fallbackNodes.Count > 0
            ? $"{fallbackNodes.Count} node(s) would fall back to the CPU ({string.Join(", ", fallbackNodes.Take(8).Select(n => $"{n.OpType} '{n.NodeName}'"))}{(fallbackNodes.Count > 8 ? ", ..." : "")})"
            : detail ?? "the device refused the graph") +
        ". Use fallback policy 'allow' to run those parts on the CPU, or choose another device.")
{
    public DeviceId Device { get; } = device;
    public IReadOnlyList<NodePlacement> FallbackNodes { get; } = fallbackNodes;
}
