using Tessera.Abstractions;
using Tessera.Engine.Devices;

namespace Tessera.Engine.Partitioning;

/// <summary>One compiled partition: what it reads and writes, and where it runs.</summary>
public sealed record CompiledPartition(GraphPartition Partition, DeviceId Device, ICompiledModel Model)
{
    /// <summary>A line for reports: "partition 2 of 5 on cpu:0: 3 node(s) (Softmax 'attn/softmax', ...); in: x; out: y".</summary>
    public string Describe(int total, IReadOnlyList<(string Name, string OpType)> nodes) =>
        $"partition {Partition.Index + 1} of {total} on {Device}: {Partition.NodeIndices.Count} node(s) " +
        $"({string.Join(", ", Partition.NodeIndices.Take(4).Select(i => $"{nodes[i].OpType} '{nodes[i].Name}'"))}{(Partition.NodeIndices.Count > 4 ? ", ..." : "")}); " +
        $"in: {List(Partition.Inputs)}; out: {List(Partition.Outputs)}";

    private static string List(IReadOnlyList<string> names) =>
        names.Count == 0 ? "-" : string.Join(", ", names.Take(6)) + (names.Count > 6 ? $", ... ({names.Count})" : "");
}

/// <summary>
/// A graph the host cut between a device and the CPU (see <see cref="GraphPartitioner"/>): each partition is compiled
/// on its own device, and a run executes them in order, handing tensors across (a device tensor goes to another
/// device through the host). Only the partitions the requested outputs depend on run. Outputs are tensors of the
/// requested device, so they can be fed back (a KV cache) like those of an unpartitioned model. Thread-safe as the
/// partitions are: each run keeps its own tensors.
/// </summary>
public sealed class PartitionedModel : ICompiledModel
{
    private readonly string _name;
    private readonly RegisteredDevice _device;
    private readonly RegisteredDevice _cpu;
    private readonly IReadOnlyList<CompiledPartition> _parts;
    private readonly Dictionary<string, TensorSpec> _inputsByName;
    private readonly HashSet<string> _outputNames;
    private readonly string? _tempDirectory;
    private int _disposed;

    internal PartitionedModel(string name, RegisteredDevice device, RegisteredDevice cpu, IReadOnlyList<CompiledPartition> parts,
        IReadOnlyList<TensorSpec> inputs, IReadOnlyList<TensorSpec> outputs, CompileReport report, string? tempDirectory)
    {
        _name = name;
        _device = device;
        _cpu = cpu;
        _parts = parts;
        Inputs = inputs;
        Outputs = outputs;
        Report = report;
        _tempDirectory = tempDirectory;
        _inputsByName = inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        _outputNames = outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
    }

    public DeviceId Device => _device.Info.Id;
    public IReadOnlyList<TensorSpec> Inputs { get; }
    public IReadOnlyList<TensorSpec> Outputs { get; }
    public CompileReport Report { get; }

    /// <summary>The partitions in run order.</summary>
    public IReadOnlyList<CompiledPartition> Partitions => _parts;

    /// <summary>The report's summary: a first line with the counts, then one line per partition.</summary>
    public IReadOnlyList<string> PartitionLines { get; internal init; } = [];

    public RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, $"Model '{_name}' on {Device} was used after it was disposed.");
        Validate(inputs, outputNames);
        var wanted = outputNames ?? Outputs.Select(o => o.Name).ToList();

        // Which partitions (and which of their outputs) the wanted outputs depend on.
        var needed = new HashSet<string>(wanted, StringComparer.Ordinal);
        var asks = new List<string>?[_parts.Count];
        for (int p = _parts.Count - 1; p >= 0; p--)
        {
            var ask = _parts[p].Partition.Outputs.Where(needed.Contains).ToList();
            if (ask.Count == 0) continue;
            asks[p] = ask;
            foreach (var i in _parts[p].Partition.Inputs) needed.Add(i);
        }

        var values = new Dictionary<string, ITensorValue>(inputs, StringComparer.Ordinal);
        var owned = new Dictionary<string, IDeviceTensor>(StringComparer.Ordinal);
        var result = new List<KeyValuePair<string, IDeviceTensor>>();
        try
        {
            for (int p = 0; p < _parts.Count; p++)
            {
                if (asks[p] is not { } ask) continue;
                var part = _parts[p];
                var feeds = new Dictionary<string, ITensorValue>(StringComparer.Ordinal);
                foreach (var name in part.Partition.Inputs)
                {
                    var v = values[name];
                    // Another device's memory goes through the host; host tensors and this device's tensors go as they are.
                    feeds[name] = v is IDeviceTensor d && d.Device != part.Device ? d.ToHost() : v;
                }
                using var outputs = part.Model.Run(feeds, ask);
                foreach (var name in ask)
                {
                    var t = outputs.Take(name);
                    owned[name] = t;
                    values[name] = t;
                }
            }
            foreach (var name in wanted)
            {
                if (owned.Remove(name, out var t))
                {
                    if (t.Device == Device) { result.Add(new(name, t)); continue; }
                    using (t) result.Add(new(name, _device.Device.CopyToDevice(t.ToHost())));
                }
                else
                {
                    // A graph input passed straight through to an output.
                    var v = values[name];
                    result.Add(new(name, _device.Device.CopyToDevice(v is HostTensor h ? h : ((IDeviceTensor)v).ToHost())));
                }
            }
            var outputsOfRun = new RunOutputs(result);
            result.Clear();
            return outputsOfRun;
        }
        catch (ModelRunException e)
        {
            throw new ModelRunException($"Running '{_name}' (cut between {Device} and {_cpu.Info.Id}) failed: {e.Message}", e);
        }
        finally
        {
            foreach (var t in owned.Values) t.Dispose();
            foreach (var (_, t) in result) t.Dispose();
        }
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
                    throw new ModelRunException($"'{_name}' has no output named '{name}'. Outputs: {string.Join(", ", _outputNames)}.");
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var p in _parts) p.Model.Dispose();
        if (_tempDirectory is not null)
            try { Directory.Delete(_tempDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
