using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Tessera.Abstractions;

// Tells the host, before it runs any code of this assembly, which class is the plugin and which contract it was built for.
[assembly: TesseraPlugin(typeof(Vendor.Plugin.VendorPlugin))]

namespace Vendor.Plugin;

/// <summary>The plugin: registers one device provider. Settings come from the engine configuration section "vendorkind".</summary>
public sealed class VendorPlugin : ITesseraPlugin
{
    public string Name => "vendorkind";
    public string Vendor => "Example Vendor";
    public Version Version => new(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        foreach (var key in context.Settings.Keys)
            if (key != "devices") throw new ArgumentException($"Unknown vendorkind plugin setting '{key}'. Allowed settings: devices.");
        int devices = 1;
        if (context.Settings.TryGetValue("devices", out var text) && (!int.TryParse(text, out devices) || devices is < 1 or > 64))
            throw new ArgumentException($"vendorkind plugin setting 'devices' is '{text}'; it must be a whole number from 1 to 64.");
        services.AddSingleton<IDeviceProvider>(new VendorDeviceProvider(devices));
    }
}

/// <summary>Lists the devices. Probe your driver here; report absent hardware as an unavailable device with a reason.</summary>
public sealed class VendorDeviceProvider(int count) : IDeviceProvider
{
    public string Kind => "vendorkind";

    public IReadOnlyList<IDevice> EnumerateDevices() => Enumerable.Range(0, count)
        .Select(i => (IDevice)new VendorDevice(new DeviceInfo(
            new DeviceId("vendorkind", i), $"Example Vendor device {i}", IsAvailable: true, UnavailableReason: null,
            TotalMemoryBytes: null, FreeMemoryBytes: null,
            // Only flags from DeviceCapabilities that are true of your device: the host reads them (docs/writing-a-plugin.md).
            Capabilities: new HashSet<string>(), PreferenceScore: 5,
            Properties: new Dictionary<string, string> { ["runtime"] = "reference kernels (template)" })))
        .ToList();
}

/// <summary>
/// One device on a runtime that is not ONNX Runtime. It runs only the nodes its runtime has kernels for and has no
/// CPU fallback of its own: <see cref="CheckSupport"/> names every node it cannot run, and <see cref="Compile"/> refuses
/// a graph holding one (under every policy). Under --fallback allow the host then cuts the graph and gives this device
/// only the parts it said it runs; under strict the user is told which nodes.
/// </summary>
public sealed class VendorDevice(DeviceInfo info) : IDevice
{
    public DeviceInfo Info => info;

    /// <summary>One placement per node, by its name in the graph; never throws.</summary>
    public GraphSupportReport CheckSupport(ModelSource model, CompileOptions options)
    {
        if (!info.IsAvailable) return new GraphSupportReport(info.Id, false, [], $"{info.Id} is not available: {info.UnavailableReason}");
        OnnxModel graph;
        try { graph = OnnxModel.Read(model); }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            return new GraphSupportReport(info.Id, false, [], $"'{model.DisplayName}' is not a readable ONNX model ({e.Message}).");
        }
        var nodes = Placements(graph);
        var refused = nodes.Where(n => !n.OnDevice).ToList();
        return new GraphSupportReport(info.Id, refused.Count == 0, nodes, refused.Count == 0
            ? $"{info.Id} runs all {nodes.Count} nodes of '{model.DisplayName}'."
            : $"{info.Id} cannot run {refused.Count} of {nodes.Count} nodes of '{model.DisplayName}': {string.Join(", ", refused.Take(8).Select(r => $"{r.OpType} '{r.NodeName}'"))}{(refused.Count > 8 ? ", ..." : "")}.");
    }

    /// <summary>Whether each node runs here, in graph order; types flow from the graph's declarations through the nodes run here.</summary>
    private static List<NodePlacement> Placements(OnnxModel graph)
    {
        var isFloat = graph.DeclaredTypes.Where(t => t.Value == TensorElementType.Float32).Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var placements = new List<NodePlacement>();
        foreach (var node in graph.Nodes)
        {
            var reason = ReferenceKernels.Supports(node, isFloat.Contains);
            if (reason is null) foreach (var o in node.Outputs) isFloat.Add(o); // the kernels here keep float32
            placements.Add(new NodePlacement(node.Name, node.QualifiedOpType, reason is null, reason));
        }
        return placements;
    }

    public ICompiledModel Compile(ModelSource model, CompileOptions options)
    {
        if (!info.IsAvailable) throw new DeviceUnavailableException(info.Id, info.UnavailableReason ?? "no reason given");
        if (options.DeviceSettings.Count > 0)
            throw new ArgumentException($"Unknown device setting '{options.DeviceSettings.Keys.First()}' for {info.Id}; this device has no settings.");
        // Optimization, thread counts and FixedDimensions are hints: map them to your compiler's options if it has such.
        var watch = Stopwatch.StartNew();
        OnnxModel graph;
        try { graph = OnnxModel.Read(model); }
        catch (FormatException e) { throw new ModelLoadException(model.DisplayName, $"is not a valid ONNX model ({e.Message}). Re-export it.", e); }
        catch (IOException e) { throw new ModelLoadException(model.DisplayName, $"refers to external data that could not be read ({e.Message}).", e); }
        var refused = Placements(graph).Where(p => !p.OnDevice).ToList();
        // No CPU runtime of our own: refuse by name under every policy (under allow the host partitions the graph).
        if (refused.Count > 0) throw new FallbackNotAllowedException(info.Id, model.DisplayName, refused);
        if (graph.Outputs.FirstOrDefault(o => o.ElementType != TensorElementType.Float32) is { } other)
            throw new ModelLoadException(model.DisplayName, $"has output '{other.Name}' of type {other.ElementType.OnnxName()}; {info.Id} produces float32 only.");
        return new VendorModel(info.Id, graph, new CompileReport(info.Id, model.DisplayName, watch.Elapsed, false, null, [], []));
    }

    public IDeviceTensor CopyToDevice(HostTensor tensor)
    {
        if (!info.IsAvailable) throw new DeviceUnavailableException(info.Id, info.UnavailableReason ?? "no reason given");
        var copy = HostTensor.Zeros(tensor.ElementType, tensor.Shape);
        tensor.AsBytes().CopyTo(copy.AsBytes());
        return new VendorTensor(info.Id, copy);
    }
}

/// <summary>A compiled graph: host or device tensors in, tensors of this device out. Run may be called from several threads at once.</summary>
public sealed class VendorModel : ICompiledModel
{
    private readonly OnnxModel _graph;
    private readonly Dictionary<string, FloatTensor> _weights;
    private volatile bool _disposed;

    internal VendorModel(DeviceId device, OnnxModel graph, CompileReport report)
    {
        Device = device;
        _graph = graph;
        Report = report;
        Inputs = graph.Inputs.Select(i => i.ToSpec()).ToList();
        Outputs = graph.Outputs.Select(o => o.ToSpec()).ToList();
        _weights = graph.Initializers.Values.Where(i => i.Floats is not null)
            .ToDictionary(i => i.Name, i => new FloatTensor(i.Dims, i.Floats!), StringComparer.Ordinal);
    }

    public DeviceId Device { get; }
    public IReadOnlyList<TensorSpec> Inputs { get; }
    public IReadOnlyList<TensorSpec> Outputs { get; }
    public CompileReport Report { get; }

    public RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, $"Model '{Report.Model}' on {Device} was used after it was disposed.");
        foreach (var name in inputs.Keys)
            if (!Inputs.Any(i => i.Name == name))
                throw new ModelRunException($"'{Report.Model}' has no input named '{name}'. Inputs: {string.Join(", ", Inputs.Select(i => i.Name))}.");
        foreach (var name in outputNames ?? [])
            if (!Outputs.Any(o => o.Name == name))
                throw new ModelRunException($"'{Report.Model}' has no output named '{name}'. Outputs: {string.Join(", ", Outputs.Select(o => o.Name))}.");
        var values = new Dictionary<string, FloatTensor>(_weights, StringComparer.Ordinal);
        foreach (var spec in Inputs)
        {
            if (!inputs.TryGetValue(spec.Name, out var v))
                throw new ModelRunException($"Input '{spec.Name}' ({spec}) is missing; '{Report.Model}' needs {string.Join(", ", Inputs.Select(i => i.Name))}.");
            if (v.ElementType != spec.ElementType || !spec.Accepts(v.Shape))
                throw new ModelRunException($"Input '{spec.Name}' of '{Report.Model}' is {v.ElementType.OnnxName()}[{string.Join(", ", v.Shape)}]; the model expects {spec}.");
            var host = v switch
            {
                HostTensor h => h,
                IDeviceTensor d => d.ToHost(), // a tensor of any device: here, or another one the host hands across
                _ => throw new ModelRunException($"Input '{spec.Name}': unsupported value {v.GetType().Name}."),
            };
            // Inputs of other types reach no node here (CheckSupport refuses their consumers).
            if (spec.ElementType == TensorElementType.Float32) values[spec.Name] = new FloatTensor(host.Shape, host.AsSpan<float>().ToArray());
        }
        foreach (var node in _graph.Nodes)
        {
            FloatTensor[] results;
            try { results = ReferenceKernels.Run(node, node.Inputs.Select(i => i.Length == 0 ? null : values[i]).ToArray()); }
            catch (InvalidOperationException e) { throw new ModelRunException($"'{Report.Model}' failed on {Device} at {node.OpType} '{node.Name}': {e.Message}", e); }
            for (int i = 0; i < node.Outputs.Length && i < results.Length; i++) values[node.Outputs[i]] = results[i];
        }
        var names = outputNames ?? Outputs.Select(o => o.Name).ToList();
        return new RunOutputs(names.Select(n => KeyValuePair.Create(n, (IDeviceTensor)new VendorTensor(Device, HostTensor.Create(values[n].Data, values[n].Shape)))));
    }

    public void Dispose() => _disposed = true;
}

/// <summary>A tensor "on" the device; here its memory is host memory (replace with your device buffers).</summary>
public sealed class VendorTensor(DeviceId device, HostTensor data) : IDeviceTensor
{
    public DeviceId Device => device;
    public TensorElementType ElementType => data.ElementType;
    public long[] Shape => data.Shape;

    /// <summary>A copy in host memory (the caller owns it).</summary>
    public HostTensor ToHost()
    {
        var copy = HostTensor.Zeros(data.ElementType, data.Shape);
        data.AsBytes().CopyTo(copy.AsBytes());
        return copy;
    }

    public void CopyTo<T>(Span<T> destination) where T : unmanaged => data.AsSpan<T>().CopyTo(destination);
    public void Dispose() { }
}
