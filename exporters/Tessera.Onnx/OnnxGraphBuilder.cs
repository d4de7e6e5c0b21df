using Tessera.Abstractions;
using Tessera.Onnx.Proto;

namespace Tessera.Onnx;

/// <summary>
/// Builds an ONNX graph: inputs, initializers, nodes, outputs, opset imports and named dynamic dimensions.
/// Value and node names are made unique automatically; <see cref="Scope"/> prefixes node names with a module
/// path (<c>/layers.0/attn/MatMul_3</c>), so a graph can be read against the module tree it came from.
/// </summary>
/// <example>
/// <code>
/// var g = new OnnxGraphBuilder("mlp");
/// var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4));
/// var w = g.Initializer("w", weights, 4, 8);
/// g.Output(g.Node("MatMul", x, w), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 8));
/// byte[] onnx = g.ToBytes();
/// </code>
/// </example>
public sealed class OnnxGraphBuilder
{
    /// <summary>ONNX IR version written (IR 10 goes with opset 21-23; ONNX Runtime 1.31 reads it).</summary>
    public const long IrVersion = 10;

    private readonly GraphProto _graph;
    private readonly Dictionary<string, long> _opsets = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _counters = new(StringComparer.Ordinal);
    private readonly Stack<string> _scopes = new();
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <param name="graphName">The graph's name.</param>
    /// <param name="opset">Version of the default ONNX domain (<c>ai.onnx</c>) to import.</param>
    public OnnxGraphBuilder(string graphName = "main", int opset = 17)
    {
        _graph = new GraphProto { Name = graphName };
        _opsets[""] = opset;
    }

    /// <summary>The default-domain opset version.</summary>
    public long Opset => _opsets[""];

    /// <summary>True when a value (input, initializer or node output) of this name exists.</summary>
    public bool HasValue(string name) => _names.Contains(name);

    /// <summary>Number of nodes added so far.</summary>
    public int NodeCount => _graph.Node.Count;

    /// <summary>Shape helper: numbers are fixed sizes, strings are named dynamic dimensions.</summary>
    public static Dimension[] Dims(params object[] dims) => dims.Select(d => d switch
    {
        string s => Dimension.Symbolic(s),
        int i => Dimension.Fixed(i),
        long l => Dimension.Fixed(l),
        Dimension dim => dim,
        _ => throw new ArgumentException($"Dimension '{d}' must be an int/long size or a string name."),
    }).ToArray();

    /// <summary>Imports an operator set (e.g. <c>com.microsoft</c> version 1). Re-importing keeps the higher version.</summary>
    public OnnxGraphBuilder UseOpset(string domain, long version)
    {
        _opsets[domain] = _opsets.TryGetValue(domain, out var v) ? Math.Max(v, version) : version;
        return this;
    }

    /// <summary>Adds a <c>metadata_props</c> entry to the model.</summary>
    public OnnxGraphBuilder Metadata(string key, string value)
    {
        _metadata[key] = value;
        return this;
    }

    /// <summary>Opens a naming scope (a module path); dispose it to close.</summary>
    public IDisposable Scope(string name)
    {
        _scopes.Push(name);
        return new ScopeHandle(this);
    }

    private sealed class ScopeHandle(OnnxGraphBuilder owner) : IDisposable
    {
        private bool _closed;
        public void Dispose()
        {
            if (_closed) return;
            _closed = true;
            owner._scopes.Pop();
        }
    }

    private string ScopePrefix => _scopes.Count == 0 ? "" : "/" + string.Join("/", _scopes.Reverse()) + "/";

    /// <summary>A name not used yet, from <paramref name="stem"/> (kept as is when free).</summary>
    public string UniqueName(string stem)
    {
        if (_names.Add(stem)) return stem;
        var n = _counters.GetValueOrDefault(stem);
        string candidate;
        do candidate = $"{stem}_{n++}"; while (!_names.Add(candidate));
        _counters[stem] = n;
        return candidate;
    }

    private void Claim(string name)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("Graph value names cannot be empty.");
        if (!_names.Add(name)) throw new ArgumentException($"The name '{name}' is already used in graph '{_graph.Name}'; graph inputs, outputs and initializers need unique names.");
    }

    /// <summary>Declares a graph input.</summary>
    public OnnxValue Input(string name, TensorElementType type, params Dimension[] shape)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, type, shape));
        return new OnnxValue(name);
    }

    /// <summary>Adds a constant weight (copied into the model as raw little-endian bytes).</summary>
    public OnnxValue Initializer<T>(string name, ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        Claim(name);
        return AddInitializer(name, data, shape);
    }

    /// <summary>Adds a weight under <paramref name="stem"/>, or <c>stem_N</c> when that name is taken.</summary>
    public OnnxValue InitializerWithUniqueName<T>(string stem, ReadOnlySpan<T> data, params long[] shape) where T : unmanaged =>
        AddInitializer(UniqueName(stem), data, shape);

    /// <summary>Adds a constant with a generated name (for small shape/axis constants).</summary>
    public OnnxValue Constant<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged =>
        AddInitializer(UniqueName(ScopePrefix.Replace('/', '.').Trim('.') is { Length: > 0 } p ? $"{p}.const" : "const"), data, shape);

    private OnnxValue AddInitializer<T>(string claimedName, ReadOnlySpan<T> data, long[] shape) where T : unmanaged
    {
        _graph.Initializer.Add(OnnxTensors.Create(claimedName, data, shape));
        return new OnnxValue(claimedName);
    }

    /// <summary>A 1-D int64 constant, the usual form of shapes, axes and indices.</summary>
    public OnnxValue Int64s(params long[] values) => Constant<long>(values, values.Length);

    /// <summary>A scalar constant.</summary>
    public OnnxValue Scalar(float value) => Constant<float>([value]);

    /// <summary>Adds a node with one output; returns it.</summary>
    public OnnxValue Node(string opType, params OnnxValue[] inputs) => Node(opType, inputs, []);

    /// <summary>Adds a node with one output and attributes; returns the output.</summary>
    public OnnxValue Node(string opType, OnnxValue[] inputs, AttributeProto[] attributes, string domain = "") =>
        NodeMulti(opType, inputs, 1, attributes, domain)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs; returns them in order.</summary>
    public OnnxValue[] NodeMulti(string opType, OnnxValue[] inputs, int outputCount, AttributeProto[]? attributes = null, string domain = "")
    {
        if (domain.Length > 0 && !_opsets.ContainsKey(domain))
            throw new InvalidOperationException($"Node {opType} is in domain '{domain}', which is not imported; call UseOpset(\"{domain}\", version) first.");
        var nodeName = UniqueName(ScopePrefix + opType);
        var node = new NodeProto { Name = nodeName, OpType = opType, Domain = domain };
        node.Input.AddRange(inputs.Select(i => i.Name));
        var outputs = new OnnxValue[outputCount];
        for (int i = 0; i < outputCount; i++)
        {
            outputs[i] = new OnnxValue(UniqueName(outputCount == 1 ? $"{nodeName}_output" : $"{nodeName}_output_{i}"));
            node.Output.Add(outputs[i].Name);
        }
        if (attributes is not null) node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return outputs;
    }

    /// <summary>
    /// Declares <paramref name="value"/> as a graph output called <paramref name="name"/>. When the value has
    /// another name, an Identity node gives it the output's name.
    /// </summary>
    public OnnxValue Output(OnnxValue value, string name, TensorElementType type, params Dimension[] shape)
    {
        if (value.Name != name)
        {
            Claim(name);
            var node = new NodeProto { Name = UniqueName(ScopePrefix + "Identity"), OpType = "Identity" };
            node.Input.Add(value.Name);
            node.Output.Add(name);
            _graph.Node.Add(node);
        }
        _graph.Output.Add(ValueInfo(name, type, shape));
        return new OnnxValue(name);
    }

    /// <summary>The finished model. The builder can still be used; each call returns a new copy.</summary>
    public ModelProto Build(string producerName = "tessera", string producerVersion = "0.1")
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = producerName,
            ProducerVersion = producerVersion,
            Graph = _graph.Clone(),
        };
        foreach (var (domain, version) in _opsets.OrderBy(p => p.Key, StringComparer.Ordinal))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        foreach (var (k, v) in _metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    /// <summary>The finished model serialized (only for models under 2 GB; see <see cref="OnnxModelFile"/>).</summary>
    public byte[] ToBytes() => Google.Protobuf.MessageExtensions.ToByteArray(Build());

    /// <summary>A value-info entry with a tensor type.</summary>
    public static ValueInfoProto ValueInfo(string name, TensorElementType type, IEnumerable<Dimension> shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (var d in shape)
        {
            var dim = new TensorShapeProto.Types.Dimension();
            if (d.Size is long size) dim.DimValue = size;
            else dim.DimParam = d.Symbol ?? "";
            tensorShape.Dim.Add(dim);
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = tensorShape } },
        };
    }
}
