namespace Tessera.Abstractions;

/// <summary>Where one graph node would run.</summary>
/// <param name="NodeName">The node's name in the graph (may be empty in graphs that do not name nodes).</param>
/// <param name="OpType">ONNX operator type, with its domain when not the default (<c>com.microsoft.GroupQueryAttention</c>).</param>
/// <param name="OnDevice">True when the device runs it; false when it falls back to the CPU.</param>
/// <param name="Reason">Why it falls back, when known.</param>
public sealed record NodePlacement(string NodeName, string OpType, bool OnDevice, string? Reason = null);

/// <summary>The answer to "can this device run this graph?".</summary>
/// <param name="Device">The device asked.</param>
/// <param name="CanRun">True when the graph can run under the given options (all on device, or with allowed fallback).</param>
/// <param name="Nodes">Per-node placement, when the device can tell; empty when it cannot.</param>
/// <param name="Message">A sentence for the operator: what runs where, or what stops the graph from running.</param>
public sealed record GraphSupportReport(DeviceId Device, bool CanRun, IReadOnlyList<NodePlacement> Nodes, string Message)
{
    /// <summary>Nodes that would run on the CPU instead of the device.</summary>
    public IEnumerable<NodePlacement> FallbackNodes => Nodes.Where(n => !n.OnDevice);
}

/// <summary>How a compile went.</summary>
/// <param name="Device">Where it was compiled.</param>
/// <param name="Model">The model's display name.</param>
/// <param name="CompileTime">Wall time of the compile.</param>
/// <param name="FromCache">True when the optimized graph came from the device's cache instead of being optimized again.</param>
/// <param name="CachePath">The cached optimized graph, when one was read or written.</param>
/// <param name="FallbackNodes">Nodes that run on the CPU instead of the device (empty when none, or when the device cannot tell).</param>
/// <param name="Notes">Anything else the operator should know (e.g. "cache write failed: disk full").</param>
public sealed record CompileReport(
    DeviceId Device,
    string Model,
    TimeSpan CompileTime,
    bool FromCache,
    string? CachePath,
    IReadOnlyList<NodePlacement> FallbackNodes,
    IReadOnlyList<string> Notes);
