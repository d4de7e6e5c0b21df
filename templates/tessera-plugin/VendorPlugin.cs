using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
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
            TotalMemoryBytes: null, FreeMemoryBytes: null, Capabilities: new HashSet<string>(), PreferenceScore: 5,
            Properties: new Dictionary<string, string> { ["execution_provider"] = "CPUExecutionProvider" })))
        .ToList();
}

/// <summary>
/// One device. Graphs run in ONNX Runtime sessions; <see cref="AddExecutionProvider"/> is where your execution
/// provider goes (as written, the CPU EP runs everything, which makes this template pass verification out of the box).
/// </summary>
public sealed class VendorDevice(DeviceInfo info) : IDevice
{
    public DeviceInfo Info => info;

    /// <summary>Append your EP here, e.g. options.AppendExecutionProvider("MyEP", settings).</summary>
    private static void AddExecutionProvider(SessionOptions options, CompileOptions compile)
    {
        if (compile.DeviceSettings.Count > 0)
            throw new ArgumentException($"Unknown device setting '{compile.DeviceSettings.Keys.First()}'; this device has no settings.");
    }

    /// <summary>
    /// Names every node and says whether this device runs it: the host cuts the graph by these names under fallback
    /// 'allow', and verify checks that a node nobody can run is reported by name. With your EP, mark the nodes it does
    /// not take (OnDevice: false, with a reason).
    /// </summary>
    public GraphSupportReport CheckSupport(ModelSource model, CompileOptions options)
    {
        List<OnnxNodeLister.Node> nodes;
        try { nodes = OnnxNodeLister.List(model.GetBytes()); }
        catch (FormatException e) { return new GraphSupportReport(info.Id, false, [], $"'{model.DisplayName}' is not a readable ONNX model ({e.Message})."); }
        try
        {
            using var session = CreateSession(model, options);
            return new GraphSupportReport(info.Id, true, nodes.Select(n => new NodePlacement(n.Name, n.QualifiedOpType, OnDevice: true)).ToList(),
                $"{info.Id} can run all {nodes.Count} nodes of '{model.DisplayName}'.");
        }
        catch (TesseraException e)
        {
            // ONNX Runtime names the op it has no kernel for: report the nodes of that op by name.
            var refused = nodes.Where(n => System.Text.RegularExpressions.Regex.IsMatch(e.Message, $@"\b{System.Text.RegularExpressions.Regex.Escape(n.OpType)}\b"))
                .Select(n => new NodePlacement(n.Name, n.QualifiedOpType, OnDevice: false, $"no kernel for {n.QualifiedOpType}")).ToList();
            return new GraphSupportReport(info.Id, false, refused, refused.Count == 0 ? e.Message
                : $"{info.Id} cannot run {string.Join(", ", refused.Select(r => $"{r.OpType} '{r.NodeName}'"))}: {e.Message}");
        }
    }

    public ICompiledModel Compile(ModelSource model, CompileOptions options)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var session = CreateSession(model, options);
        return new VendorModel(info.Id, session, new CompileReport(info.Id, model.DisplayName, watch.Elapsed, false, null, [], []));
    }

    public IDeviceTensor CopyToDevice(HostTensor tensor) => new VendorTensor(info.Id, tensor);

    private static InferenceSession CreateSession(ModelSource model, CompileOptions compile)
    {
        var options = new SessionOptions
        {
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            IntraOpNumThreads = compile.IntraOpThreads,
            GraphOptimizationLevel = compile.Optimization switch
            {
                OptimizationLevel.None => GraphOptimizationLevel.ORT_DISABLE_ALL,
                OptimizationLevel.Basic => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
        };
        try
        {
            AddExecutionProvider(options, compile);
            return model.FilePath is not null ? new InferenceSession(model.FilePath, options) : new InferenceSession(model.GetBytes(), options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelLoadException(model.DisplayName, $"could not be compiled: {e.Message.Split('\n')[0]}", e);
        }
        finally
        {
            options.Dispose();
        }
    }
}

/// <summary>A compiled graph: host tensors in, host-backed device tensors out (replace with device memory for real hardware).</summary>
public sealed class VendorModel(DeviceId device, InferenceSession session, CompileReport report) : ICompiledModel
{
    public DeviceId Device => device;
    public IReadOnlyList<TensorSpec> Inputs { get; } = Specs(session.InputMetadata);
    public IReadOnlyList<TensorSpec> Outputs { get; } = Specs(session.OutputMetadata);
    public CompileReport Report => report;

    private volatile bool _disposed;

    public RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null)
    {
        // A disposed native session must never be touched (that crashes the process): fail cleanly instead.
        ObjectDisposedException.ThrowIf(_disposed, $"Model '{report.Model}' on {device} was used after it was disposed.");
        foreach (var spec in Inputs)
        {
            if (!inputs.TryGetValue(spec.Name, out var v))
                throw new ModelRunException($"Input '{spec.Name}' ({spec}) is missing; '{report.Model}' needs {string.Join(", ", Inputs.Select(i => i.Name))}.");
            if (v.ElementType != spec.ElementType || !spec.Accepts(v.Shape))
                throw new ModelRunException($"Input '{spec.Name}' of '{report.Model}' is {v.ElementType.OnnxName()}[{string.Join(", ", v.Shape)}]; the model expects {spec}.");
        }
        foreach (var name in inputs.Keys)
            if (!Inputs.Any(i => i.Name == name))
                throw new ModelRunException($"'{report.Model}' has no input named '{name}'. Inputs: {string.Join(", ", Inputs.Select(i => i.Name))}.");
        foreach (var name in outputNames ?? [])
            if (!Outputs.Any(o => o.Name == name))
                throw new ModelRunException($"'{report.Model}' has no output named '{name}'. Outputs: {string.Join(", ", Outputs.Select(o => o.Name))}.");
        var names = outputNames ?? Outputs.Select(o => o.Name).ToList();
        var values = new List<OrtValue>();
        try
        {
            foreach (var spec in Inputs) values.Add(ToOrt(Host(inputs[spec.Name])));
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, Inputs.Select(i => i.Name).ToList(), values, names);
            return new RunOutputs(names.Select((n, i) => KeyValuePair.Create(n, (IDeviceTensor)new VendorTensor(device, FromOrt(results[i])))));
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelRunException($"'{report.Model}' failed on {device}: {e.Message.Split('\n')[0]}", e);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        session.Dispose();
    }

    private static HostTensor Host(ITensorValue value) => value switch
    {
        HostTensor h => h,
        IDeviceTensor d => d.ToHost(),
        _ => throw new ModelRunException($"Unsupported input value {value.GetType().Name}."),
    };

    private static OrtValue ToOrt(HostTensor t)
    {
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType)(int)t.ElementType, t.Shape);
        t.AsBytes().CopyTo(value.GetTensorMutableRawData());
        return value;
    }

    private static HostTensor FromOrt(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var host = HostTensor.Zeros((Tessera.Abstractions.TensorElementType)(int)info.ElementDataType, info.Shape);
        value.GetTensorMutableRawData().CopyTo(host.AsBytes());
        return host;
    }

    private static List<TensorSpec> Specs(IReadOnlyDictionary<string, NodeMetadata> metadata) => metadata
        .Select(m => new TensorSpec(m.Key, (Tessera.Abstractions.TensorElementType)(int)m.Value.ElementDataType,
            m.Value.Dimensions.Select((d, i) => d >= 0 ? Dimension.Fixed(d) : Dimension.Symbolic(m.Value.SymbolicDimensions[i])).ToList()))
        .ToList();
}

/// <summary>A tensor "on" the device; here its memory is host memory.</summary>
public sealed class VendorTensor(DeviceId device, HostTensor data) : IDeviceTensor
{
    public DeviceId Device => device;
    public Tessera.Abstractions.TensorElementType ElementType => data.ElementType;
    public long[] Shape => data.Shape;
    public HostTensor ToHost() => HostTensor.Zeros(data.ElementType, data.Shape) is var copy && data.AsBytes().TryCopyTo(copy.AsBytes()) ? copy : data;
    public void CopyTo<T>(Span<T> destination) where T : unmanaged => data.AsSpan<T>().CopyTo(destination);
    public void Dispose() { }
}
