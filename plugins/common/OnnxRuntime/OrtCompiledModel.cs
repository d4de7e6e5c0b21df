using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>
/// An ONNX Runtime session on one device. Each run binds inputs and outputs with an IOBinding: host tensors are
/// read in place (pinned, not copied), device tensors are bound as they are, and outputs are allocated by
/// ONNX Runtime in device memory and handed to the caller, so state (a KV cache) can stay on the device.
/// </summary>
internal sealed class OrtCompiledModel : ICompiledModel
{
    private readonly OrtDevice _device;
    private readonly string _name;
    private InferenceSession? _session;
    private readonly RunOptions _runOptions = new();
    private readonly Dictionary<string, TensorSpec> _inputsByName;
    private readonly HashSet<string> _outputNames;
    private readonly string[] _allOutputNames;

    public OrtCompiledModel(OrtDevice device, string name, InferenceSession session, CompileReport report)
    {
        _device = device;
        _name = name;
        _session = session;
        Report = report;
        Inputs = session.InputMetadata.Select(p => OrtTypes.Spec(p.Key, p.Value)).ToList();
        Outputs = session.OutputMetadata.Select(p => OrtTypes.Spec(p.Key, p.Value)).ToList();
        _inputsByName = Inputs.ToDictionary(s => s.Name, StringComparer.Ordinal);
        _allOutputNames = Outputs.Select(o => o.Name).ToArray();
        _outputNames = new HashSet<string>(_allOutputNames, StringComparer.Ordinal);
    }

    public DeviceId Device => _device.Info.Id;
    public IReadOnlyList<TensorSpec> Inputs { get; }
    public IReadOnlyList<TensorSpec> Outputs { get; }
    public CompileReport Report { get; }

    private InferenceSession Session => _session ?? throw new ObjectDisposedException(nameof(ICompiledModel), $"Model '{_name}' on {Device} was used after it was disposed.");

    public RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null)
    {
        var session = Session;
        Validate(inputs, outputNames);
        var wanted = outputNames ?? _allOutputNames;

        var pins = new List<GCHandle>(inputs.Count);
        var owned = new List<OrtValue>(inputs.Count);
        try
        {
            using var binding = session.CreateIoBinding();
            foreach (var (name, value) in inputs)
                binding.BindInput(name, ToOrtValue(name, value, pins, owned));
            foreach (var name in wanted)
                binding.BindOutputToDevice(name, _device.OutputMemory);

            session.RunWithBinding(_runOptions, binding);

            // The collection owns the values; hand each to a device tensor instead of disposing it.
            var values = binding.GetOutputValues();
            var result = new List<KeyValuePair<string, IDeviceTensor>>(wanted.Count);
            int i = 0;
            foreach (var v in values)
                result.Add(new(wanted[i++], new OrtDeviceTensor(Device, v, _device.OutputsHostAccessible)));
            return new RunOutputs(result);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelRunException($"Running '{_name}' on {Device} failed: {e.Message.Split('\n')[0]}", e);
        }
        finally
        {
            foreach (var v in owned) v.Dispose();
            foreach (var h in pins) h.Free();
        }
    }

    private OrtValue ToOrtValue(string name, ITensorValue value, List<GCHandle> pins, List<OrtValue> owned)
    {
        switch (value)
        {
            case OrtDeviceTensor t when t.HostAccessible == _device.OutputsHostAccessible:
                return t.Value;
            case HostTensor host:
                return Pin(host, pins, owned);
            case IDeviceTensor foreign:
                // Another plugin's memory: go through the host (a copy, but correct).
                return Pin(foreign.ToHost(), pins, owned);
            default:
                throw new ModelRunException($"Input '{name}' of '{_name}' is a {value.GetType().Name}; pass a HostTensor or a device tensor.");
        }
    }

    private static OrtValue Pin(HostTensor host, List<GCHandle> pins, List<OrtValue> owned)
    {
        var handle = GCHandle.Alloc(host.Data, GCHandleType.Pinned);
        pins.Add(handle);
        var value = OrtValue.CreateTensorValueWithData(
            OrtMemoryInfo.DefaultInstance, OrtTypes.ToOrt(host.ElementType), host.Shape,
            handle.AddrOfPinnedObject(), host.ElementCount * host.ElementType.SizeOf());
        owned.Add(value);
        return value;
    }

    private void Validate(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames)
    {
        foreach (var spec in Inputs)
        {
            if (!inputs.TryGetValue(spec.Name, out var v))
                throw new ModelRunException($"Input '{spec.Name}' of '{_name}' is missing. The model needs: {string.Join("; ", Inputs)}.");
            if (v.ElementType != spec.ElementType)
                throw new ModelRunException($"Input '{spec.Name}' of '{_name}' is {v.ElementType.OnnxName()} but the model expects {spec.ElementType.OnnxName()}.");
            if (!spec.Accepts(v.Shape))
                throw new ModelRunException($"Input '{spec.Name}' of '{_name}' has shape [{string.Join(", ", v.Shape)}] but the model expects [{string.Join(", ", spec.Shape)}].");
        }
        foreach (var name in inputs.Keys)
            if (!_inputsByName.ContainsKey(name))
                throw new ModelRunException($"'{_name}' has no input named '{name}'. Inputs: {string.Join(", ", _inputsByName.Keys)}.");
        if (outputNames is not null)
            foreach (var name in outputNames)
                if (!_outputNames.Contains(name))
                    throw new ModelRunException($"'{_name}' has no output named '{name}'. Outputs: {string.Join(", ", _allOutputNames)}.");
    }

    public void Dispose()
    {
        _session?.Dispose();
        _session = null;
        _runOptions.Dispose();
    }
}
