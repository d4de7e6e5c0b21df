using System.Diagnostics;
using Google.Protobuf;
using Tessera.Abstractions;
using Tessera.Engine.Devices;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Engine.Partitioning;

/// <summary>
/// Fallback done by the host: when a device refuses a graph under <see cref="FallbackPolicy.Allow"/>, its
/// <see cref="IDevice.CheckSupport"/> node list decides which nodes it runs; the rest run on the CPU device, in
/// partitions compiled separately and run in order. Plugins that fall back internally (the ONNX Runtime ones)
/// compile the whole graph themselves and never get here.
/// </summary>
public static class HostPartitioning
{
    /// <summary>Partitions serialized in memory up to this size; larger ones are written to a temporary folder with external data.</summary>
    private const long InMemoryLimitBytes = 1L << 30;

    /// <summary>
    /// Cuts and compiles <paramref name="source"/> for <paramref name="device"/> and <paramref name="cpu"/>.
    /// <paramref name="refusal"/> is the device's answer to the whole graph (quoted when the device's own report
    /// gives the host nothing to move).
    /// </summary>
    public static PartitionedModel Compile(ModelSource source, RegisteredDevice device, RegisteredDevice cpu, CompileOptions options, TesseraException refusal)
    {
        var watch = Stopwatch.StartNew();
        var model = Load(source);
        var graph = model.Graph;
        string? temp = null;
        var compiled = new List<CompiledPartition>();
        try
        {
            // The device answers for a graph whose nodes all have distinct names (only when the original's do not).
            var checkSource = source;
            if (GraphPartitioner.NameNodes(graph))
                checkSource = Materialize(model, $"{source.DisplayName} (nodes named)", ref temp, "named");
            var support = device.Device.CheckSupport(checkSource, options);
            var refused = support.Nodes.Where(n => !n.OnDevice).ToList();
            var id = device.Info.Id;
            if (refused.Count == 0)
                throw new TesseraException($"Model '{source.DisplayName}' cannot run on {id} even with fallback 'allow': the device refused it ({Detail(refusal)}) " +
                    $"but its CheckSupport reports no node it cannot run ({support.Message}), so the host has nothing to move to the CPU. " +
                    $"The plugin '{device.PluginName}' must name the unsupported nodes in CheckSupport (see docs/writing-a-plugin.md); or choose another device.");
            var indexByName = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < graph.Node.Count; i++) indexByName[graph.Node[i].Name] = i;
            var unknown = refused.Where(n => !indexByName.ContainsKey(n.NodeName)).Select(n => $"'{n.NodeName}'").ToList();
            if (unknown.Count > 0)
                throw new TesseraException($"Model '{source.DisplayName}': {id}'s CheckSupport names node(s) the graph does not have ({string.Join(", ", unknown.Take(8))}), " +
                    $"so the host cannot cut the graph. The plugin '{device.PluginName}' must report nodes by their names in the graph it was given.");
            var onDevice = new bool[graph.Node.Count];
            Array.Fill(onDevice, true);
            var reasons = new Dictionary<int, NodePlacement>();
            foreach (var n in refused) { onDevice[indexByName[n.NodeName]] = false; reasons[indexByName[n.NodeName]] = n; }

            var partitions = GraphPartitioner.Partition(graph, onDevice);
            var types = CutTypes(model, partitions, cpu);
            var cpuOptions = options with { DeviceSettings = new Dictionary<string, string>() };
            foreach (var p in partitions)
            {
                var part = GraphPartitioner.Extract(model, p, name => types[name]);
                var target = p.OnDevice ? device : cpu;
                var partSource = Materialize(part, $"{source.DisplayName} [part {p.Index + 1}/{partitions.Count} on {target.Info.Id}]", ref temp, $"part{p.Index}");
                ICompiledModel m;
                try
                {
                    m = target.Device.Compile(partSource, p.OnDevice ? options : cpuOptions);
                }
                catch (FallbackNotAllowedException e) when (p.OnDevice)
                {
                    throw new TesseraException($"Model '{source.DisplayName}': {id} refused partition {p.Index + 1} of {partitions.Count}, whose nodes its CheckSupport accepted ({Detail(e)}). " +
                        $"The plugin '{device.PluginName}' must accept every node it reports as supported.", e);
                }
                compiled.Add(new CompiledPartition(p, target.Info.Id, m));
            }

            var nodes = graph.Node.Select(n => (n.Name, OpType: n.Domain.Length == 0 ? n.OpType : $"{n.Domain}.{n.OpType}")).ToList();
            var lines = compiled.Select(c => c.Describe(compiled.Count, nodes)).ToList();
            lines.Insert(0, $"the host cut '{source.DisplayName}' into {compiled.Count} partitions: {compiled.Count(c => c.Partition.OnDevice)} on {id}, " +
                $"{compiled.Count(c => !c.Partition.OnDevice)} on {cpu.Info.Id} ({refused.Count} node(s) {id} cannot run: {string.Join(", ", refused.Select(n => n.OpType).Distinct().Take(8))})");
            var notes = lines.ToList();
            notes.AddRange(compiled.SelectMany(c => c.Model.Report.Notes.Select(n => $"partition {c.Partition.Index + 1}: {n}")));
            var fallbackNodes = partitions.Where(p => !p.OnDevice).SelectMany(p => p.NodeIndices)
                .Select(i => reasons.TryGetValue(i, out var r) ? r with { Reason = r.Reason ?? $"not supported by {id}" } : new NodePlacement(nodes[i].Name, nodes[i].OpType, false, $"not supported by {id}"))
                .ToList();
            var report = new CompileReport(id, source.DisplayName, watch.Elapsed, compiled.All(c => c.Model.Report.FromCache), null, fallbackNodes, notes);

            var inputs = graph.Input.Where(i => !graph.Initializer.Any(t => t.Name == i.Name))
                .Select(i => GraphPartitioner.Spec(i) ?? SpecFromParts(compiled, i.Name, input: true)).ToList();
            var outputs = graph.Output.Select(o => GraphPartitioner.Spec(o) ?? SpecFromParts(compiled, o.Name, input: false)).ToList();
            var result = new PartitionedModel(source.DisplayName, device, cpu, compiled, inputs, outputs, report, temp) { PartitionLines = lines };
            compiled = [];
            temp = null;
            return result;
        }
        finally
        {
            foreach (var c in compiled) c.Model.Dispose();
            if (temp is not null) try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
        }
    }

    private static string Detail(TesseraException e) => e.Message.TrimEnd('.');

    private static TensorSpec SpecFromParts(IReadOnlyList<CompiledPartition> parts, string name, bool input) =>
        parts.SelectMany(p => input ? p.Model.Inputs : p.Model.Outputs).FirstOrDefault(s => s.Name == name)
        ?? throw new ModelLoadException(name, "is a graph input or output without a tensor type that no partition knows either; give it a type in the model.");

    /// <summary>The model with external data resolved (a file) or parsed from memory.</summary>
    private static ModelProto Load(ModelSource source)
    {
        if (source.FilePath is { } path) return OnnxModelFile.Load(path);
        try
        {
            var m = ModelProto.Parser.ParseFrom(source.GetBytes());
            return m.Graph is null ? throw new ModelLoadException(source.DisplayName, "has no graph; it is not an ONNX model.") : m;
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelLoadException(source.DisplayName, $"is not a valid ONNX model ({e.Message}).", e);
        }
    }

    /// <summary>
    /// Types of the tensors that cross cuts: from the graph's value_info where it has them, otherwise from the CPU
    /// device compiling the whole graph with those tensors as extra outputs (type inference, nothing runs).
    /// </summary>
    private static Dictionary<string, ValueInfoProto> CutTypes(ModelProto model, IReadOnlyList<GraphPartition> partitions, RegisteredDevice cpu)
    {
        var graph = model.Graph;
        var declared = graph.Input.Concat(graph.Output).Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var cut = partitions.SelectMany(p => p.Inputs.Concat(p.Outputs)).Where(n => !declared.Contains(n)).ToHashSet(StringComparer.Ordinal);
        var types = new Dictionary<string, ValueInfoProto>(StringComparer.Ordinal);
        foreach (var v in graph.ValueInfo)
            if (cut.Contains(v.Name) && GraphPartitioner.Spec(v) is not null) types[v.Name] = v;
        var missing = cut.Where(n => !types.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count == 0) return types;

        var probe = model.Clone();
        foreach (var n in missing) probe.Graph.Output.Add(new ValueInfoProto { Name = n });
        string? temp = null;
        try
        {
            var probeSource = Materialize(probe, "type probe", ref temp, "probe");
            using var m = cpu.Device.Compile(probeSource, new CompileOptions { Optimization = OptimizationLevel.None, UseCompiledModelCache = false });
            foreach (var spec in m.Outputs.Where(o => missing.Contains(o.Name)))
                types[spec.Name] = GraphPartitioner.ValueInfo(spec);
        }
        finally
        {
            if (temp is not null) try { Directory.Delete(temp, recursive: true); } catch (IOException) { }
        }
        var still = missing.Where(n => !types.ContainsKey(n)).ToList();
        if (still.Count > 0)
            throw new ModelLoadException(graph.Name, $"has tensors crossing a device cut whose types are unknown ({string.Join(", ", still.Take(8))}); add them to the graph's value_info.");
        return types;
    }

    /// <summary>A model as bytes in memory, or, when large, as a file with external data in a temporary folder.</summary>
    private static ModelSource Materialize(ModelProto model, string displayName, ref string? temp, string stem)
    {
        if (GraphPartitioner.SizeOf(model) < InMemoryLimitBytes) return ModelSource.FromBytes(model.ToByteArray(), displayName);
        temp ??= Directory.CreateTempSubdirectory("tessera-partitions-").FullName;
        var path = Path.Combine(temp, stem + ".onnx");
        OnnxModelFile.Save(model, path, new ExternalDataOptions());
        return ModelSource.FromFile(path);
    }
}
