using Google.Protobuf;
using Tessera.Abstractions;
using Tessera.Onnx.Proto;

namespace Tessera.Engine.Partitioning;

/// <summary>One piece of a cut graph: nodes that run on one device, with the tensors crossing its edges.</summary>
/// <param name="Index">0-based position in run order.</param>
/// <param name="OnDevice">True: the requested device runs it; false: the CPU does.</param>
/// <param name="NodeIndices">Indices of its nodes in the original graph, in run order.</param>
/// <param name="Inputs">Tensors it reads that it does not produce: graph inputs or earlier partitions' outputs (not initializers).</param>
/// <param name="Outputs">Tensors it produces that later partitions or the graph's outputs read.</param>
public sealed record GraphPartition(int Index, bool OnDevice, IReadOnlyList<int> NodeIndices, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);

/// <summary>
/// Cuts an ONNX graph into maximal runs of nodes a device supports and runs of nodes the CPU must take (the host's
/// side of fallback, as ggml's backend scheduler and ONNX Runtime's EP partitioning do). Nodes are scheduled in a
/// topological order that stays on the current device while any node of that device is ready, so independent
/// nodes are grouped rather than cut in the graph's written order. Deterministic: ties go to the lower node index.
/// </summary>
public static class GraphPartitioner
{
    /// <summary>
    /// Gives every node a name that is unique in the graph (unnamed or repeated names get <c>OpType_index</c>), so a
    /// device's per-node answer can be matched to nodes. Returns true when a name was changed.
    /// </summary>
    public static bool NameNodes(GraphProto graph)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        bool changed = false;
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var n = graph.Node[i];
            if (n.Name.Length == 0 || !seen.Add(n.Name))
            {
                var name = $"{n.OpType}_{i}";
                while (!seen.Add(name)) name += "_";
                n.Name = name;
                changed = true;
            }
        }
        return changed;
    }

    /// <summary>Names a node reads, including names its subgraphs (If/Loop/Scan bodies) take from the outer scope.</summary>
    public static IEnumerable<string> Reads(NodeProto node)
    {
        foreach (var i in node.Input) if (i.Length > 0) yield return i;
        foreach (var a in node.Attribute)
        {
            if (a.G is not null) foreach (var r in OuterScopeReads(a.G)) yield return r;
            foreach (var g in a.Graphs) foreach (var r in OuterScopeReads(g)) yield return r;
        }
    }

    private static IEnumerable<string> OuterScopeReads(GraphProto g)
    {
        var defined = new HashSet<string>(g.Input.Select(i => i.Name).Concat(g.Initializer.Select(t => t.Name)), StringComparer.Ordinal);
        foreach (var n in g.Node) foreach (var o in n.Output) defined.Add(o);
        var reads = new List<string>();
        foreach (var n in g.Node) reads.AddRange(Reads(n));
        return reads.Where(r => !defined.Contains(r)).Distinct(StringComparer.Ordinal);
    }

    /// <summary>
    /// Partitions <paramref name="graph"/> given which nodes the device runs (<paramref name="onDevice"/>, by node
    /// index). Partitions alternate between the device and the CPU; each is as large as the dependencies allow.
    /// </summary>
    public static IReadOnlyList<GraphPartition> Partition(GraphProto graph, IReadOnlyList<bool> onDevice)
    {
        int count = graph.Node.Count;
        if (onDevice.Count != count) throw new ArgumentException($"{onDevice.Count} placements for {count} nodes.", nameof(onDevice));
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            foreach (var o in graph.Node[i].Output)
                if (o.Length > 0) producer[o] = i;

        var reads = new List<string>[count];
        var consumers = new List<int>[count];
        var pending = new int[count];
        for (int i = 0; i < count; i++) consumers[i] = [];
        for (int i = 0; i < count; i++)
        {
            reads[i] = Reads(graph.Node[i]).Distinct(StringComparer.Ordinal).ToList();
            foreach (var p in reads[i].Where(producer.ContainsKey).Select(r => producer[r]).Distinct())
            {
                if (p == i) throw new InvalidDataException($"Node '{graph.Node[i].Name}' reads its own output; the graph has a cycle.");
                consumers[p].Add(i);
                pending[i]++;
            }
        }

        // Kahn's algorithm, preferring nodes of the current partition's device.
        var ready = new[] { new SortedSet<int>(), new SortedSet<int>() }; // [0] = cpu, [1] = device
        for (int i = 0; i < count; i++) if (pending[i] == 0) ready[onDevice[i] ? 1 : 0].Add(i);
        var groups = new List<(bool OnDevice, List<int> Nodes)>();
        int scheduled = 0;
        bool? current = null;
        while (scheduled < count)
        {
            int side = current is bool c ? (c ? 1 : 0) : -1;
            if (side < 0 || ready[side].Count == 0)
            {
                // Switch to the other side (or start with the side of the lowest ready node).
                if (ready[0].Count == 0 && ready[1].Count == 0)
                    throw new InvalidDataException("The graph has a cycle or reads a tensor no node, input or initializer provides; it is not a valid ONNX graph.");
                side = side < 0
                    ? (ready[0].Count == 0 ? 1 : ready[1].Count == 0 ? 0 : (ready[0].Min < ready[1].Min ? 0 : 1))
                    : 1 - side;
                current = side == 1;
                groups.Add((side == 1, []));
            }
            int next = ready[side].Min;
            ready[side].Remove(next);
            groups[^1].Nodes.Add(next);
            scheduled++;
            foreach (var k in consumers[next])
                if (--pending[k] == 0) ready[onDevice[k] ? 1 : 0].Add(k);
        }

        var partitionOf = new int[count];
        for (int g = 0; g < groups.Count; g++) foreach (var n in groups[g].Nodes) partitionOf[n] = g;
        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var result = new List<GraphPartition>(groups.Count);
        for (int g = 0; g < groups.Count; g++)
        {
            var nodes = groups[g].Nodes;
            var produced = nodes.SelectMany(n => graph.Node[n].Output).Where(o => o.Length > 0).ToHashSet(StringComparer.Ordinal);
            var inputs = nodes.SelectMany(n => reads[n])
                .Where(r => !produced.Contains(r) && !(initializers.Contains(r) && !producer.ContainsKey(r)))
                .Distinct(StringComparer.Ordinal).ToList();
            var outputs = nodes.SelectMany(n => graph.Node[n].Output).Where(o => o.Length > 0)
                .Where(o => graphOutputs.Contains(o) || consumers[producer[o]].Any(k => partitionOf[k] != g && reads[k].Contains(o)))
                .Distinct(StringComparer.Ordinal).ToList();
            result.Add(new GraphPartition(g, groups[g].OnDevice, nodes, inputs, outputs));
        }
        return result;
    }

    /// <summary>
    /// The model of one partition: its nodes, the initializers they use, and typed inputs and outputs.
    /// <paramref name="typeOf"/> gives the type of a tensor crossing a cut (graph inputs and outputs keep theirs).
    /// </summary>
    public static ModelProto Extract(ModelProto model, GraphPartition partition, Func<string, ValueInfoProto> typeOf)
    {
        var graph = model.Graph;
        var sub = new GraphProto { Name = $"{graph.Name}.part{partition.Index}" };
        foreach (var n in partition.NodeIndices) sub.Node.Add(graph.Node[n].Clone());
        var used = partition.NodeIndices.SelectMany(n => Reads(graph.Node[n])).ToHashSet(StringComparer.Ordinal);
        foreach (var t in graph.Initializer)
            if (used.Contains(t.Name)) sub.Initializer.Add(t); // shared, not copied: the partition is serialized before anything changes
        var inputs = graph.Input.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var outputs = graph.Output.ToDictionary(o => o.Name, StringComparer.Ordinal);
        foreach (var name in partition.Inputs) sub.Input.Add(inputs.TryGetValue(name, out var vi) ? vi.Clone() : typeOf(name));
        foreach (var name in partition.Outputs) sub.Output.Add(outputs.TryGetValue(name, out var vo) ? vo.Clone() : typeOf(name));
        var known = sub.Input.Concat(sub.Output).Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var producedHere = partition.NodeIndices.SelectMany(n => graph.Node[n].Output).ToHashSet(StringComparer.Ordinal);
        foreach (var v in graph.ValueInfo)
            if (!known.Contains(v.Name) && (producedHere.Contains(v.Name) || used.Contains(v.Name))) sub.ValueInfo.Add(v);
        var result = new ModelProto
        {
            IrVersion = model.IrVersion, ProducerName = model.ProducerName, ProducerVersion = model.ProducerVersion,
            Domain = model.Domain, ModelVersion = model.ModelVersion, Graph = sub,
        };
        result.OpsetImport.AddRange(model.OpsetImport);
        result.MetadataProps.AddRange(model.MetadataProps);
        return result;
    }

    /// <summary>A typed value description from a tensor signature (symbolic sizes keep their names).</summary>
    public static ValueInfoProto ValueInfo(TensorSpec spec)
    {
        var shape = new TensorShapeProto();
        foreach (var d in spec.Shape)
        {
            var dim = new TensorShapeProto.Types.Dimension();
            if (d.Size is long s) dim.DimValue = s;
            else if (!string.IsNullOrEmpty(d.Symbol) && d.Symbol != "?") dim.DimParam = d.Symbol;
            shape.Dim.Add(dim);
        }
        return new ValueInfoProto
        {
            Name = spec.Name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)spec.ElementType, Shape = shape } },
        };
    }

    /// <summary>A tensor signature from a typed value description, or null when it has no tensor type.</summary>
    public static TensorSpec? Spec(ValueInfoProto v)
    {
        if (v.Type?.TensorType is not { } t || !t.HasElemType || t.Shape is null || !Enum.IsDefined(typeof(TensorElementType), t.ElemType)) return null;
        var dims = t.Shape.Dim.Select(d => d.HasDimValue ? Dimension.Fixed(d.DimValue) : Dimension.Symbolic(d.HasDimParam && d.DimParam.Length > 0 ? d.DimParam : "?")).ToList();
        return new TensorSpec(v.Name, (TensorElementType)t.ElemType, dims);
    }

    /// <summary>Serialized size of a model (protobuf cannot write 2 GiB or more in one message).</summary>
    public static long SizeOf(ModelProto model) => model.CalculateSize();
}
