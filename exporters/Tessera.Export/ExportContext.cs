using Tessera.Abstractions;
using Tessera.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>A module the exporter has no mapping for; names where it is in the module tree and its type.</summary>
public sealed class UnmappedModuleException(string path, Type type)
    : Exception($"No ONNX mapping for module '{(path.Length == 0 ? "(root)" : path)}' of type {type.FullName}. Register one with " +
                $"Tessera.Export.ModuleMappings.Register<{type.Name}>((ctx, module, inputs) => ...), or implement Tessera.Export.IOnnxExportable on the module (docs/exporting.md).")
{
    public string ModulePath { get; } = path;
    public Type ModuleType { get; } = type;
}

/// <summary>
/// The state of one export: the graph under construction, where in the module tree we are (node and weight names
/// follow it, e.g. <c>layers.0.attn.q_proj.weight</c>), and small helpers for the ONNX ops the mappings use.
/// Default-domain opset 21 unless asked otherwise (21-23: the mappings use Gelu from opset 20 and input-form axes).
/// </summary>
public sealed class ExportContext
{
    public const int DefaultOpset = 21;
    public const int MinOpset = 21, MaxOpset = 23;

    private readonly Stack<string> _path = new();

    public ExportContext(string graphName, int opset = DefaultOpset)
    {
        if (opset is < MinOpset or > MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset, $"The exporter writes opsets {MinOpset} to {MaxOpset} (its mappings need Gelu, opset 20, and ONNX Runtime 1.31 reads up to 23).");
        Graph = new OnnxGraphBuilder(graphName, opset);
    }

    public OnnxGraphBuilder Graph { get; }

    /// <summary>The module path being exported ("" at the root).</summary>
    public string ModulePath => string.Join(".", _path.Reverse());

    /// <summary>Enters a child module: node names and weight names get its path.</summary>
    public IDisposable Enter(string name)
    {
        _path.Push(name);
        var scope = Graph.Scope(name);
        return new Exit(this, scope);
    }

    private sealed class Exit(ExportContext ctx, IDisposable scope) : IDisposable
    {
        public void Dispose()
        {
            scope.Dispose();
            ctx._path.Pop();
        }
    }

    /// <summary>Exports a child module (by its registered mapping) under <paramref name="name"/>; it must have one output.</summary>
    public OnnxValue Module(string name, nn.Module module, params OnnxValue[] inputs)
    {
        using (Enter(name)) return ModuleMappings.Export(this, module, inputs);
    }

    /// <summary>Exports a child module under <paramref name="name"/> and returns all of its outputs.</summary>
    public OnnxValue[] ModuleOutputs(string name, nn.Module module, params OnnxValue[] inputs)
    {
        using (Enter(name)) return ModuleMappings.ExportAll(this, module, inputs);
    }

    /// <summary>A weight as a float32 initializer named after the module path.</summary>
    public OnnxValue Weight(string name, Tensor t)
    {
        using var cpu = t.detach().cpu().to(float32).contiguous();
        var full = ModulePath.Length == 0 ? name : $"{ModulePath}.{name}";
        return Graph.InitializerWithUniqueName<float>(full, cpu.data<float>().ToArray(), cpu.shape);
    }

    // ---- small op helpers (names follow ONNX) ----
    public OnnxValue Op(string op, params OnnxValue[] inputs) => Graph.Node(op, inputs);
    public OnnxValue Op(string op, OnnxValue[] inputs, params Tessera.Onnx.Proto.AttributeProto[] attrs) => Graph.Node(op, inputs, attrs);
    public OnnxValue I64(params long[] values) => Graph.Int64s(values);
    public OnnxValue F32(float value) => Graph.Scalar(value);
    public OnnxValue MatMul(OnnxValue a, OnnxValue b) => Op("MatMul", a, b);
    public OnnxValue Add(OnnxValue a, OnnxValue b) => Op("Add", a, b);
    public OnnxValue Sub(OnnxValue a, OnnxValue b) => Op("Sub", a, b);
    public OnnxValue Mul(OnnxValue a, OnnxValue b) => Op("Mul", a, b);
    public OnnxValue Div(OnnxValue a, OnnxValue b) => Op("Div", a, b);
    public OnnxValue Neg(OnnxValue a) => Op("Neg", a);
    public OnnxValue Sigmoid(OnnxValue a) => Op("Sigmoid", a);
    public OnnxValue Silu(OnnxValue a) => Mul(a, Sigmoid(a));
    public OnnxValue Reshape(OnnxValue x, params long[] shape) => Op("Reshape", x, I64(shape));
    public OnnxValue Transpose(OnnxValue x, params long[] perm) => Op("Transpose", [x], OnnxAttribute.Ints("perm", perm));
    public OnnxValue Unsqueeze(OnnxValue x, params long[] axes) => Op("Unsqueeze", x, I64(axes));
    public OnnxValue Concat(long axis, params OnnxValue[] xs) => Op("Concat", xs, OnnxAttribute.Int("axis", axis));
    public OnnxValue Softmax(OnnxValue x, long axis = -1) => Op("Softmax", [x], OnnxAttribute.Int("axis", axis));
    public OnnxValue Cast(OnnxValue x, TensorElementType to) => Op("Cast", [x], OnnxAttribute.Int("to", (long)to));

    /// <summary>x[..., start:end] along <paramref name="axis"/>.</summary>
    public OnnxValue Slice(OnnxValue x, long start, long end, long axis) => Op("Slice", x, I64(start), I64(end), I64(axis));

    /// <summary>Splits x into equal chunks along an axis.</summary>
    public OnnxValue[] Split(OnnxValue x, int parts, long axis) =>
        Graph.NodeMulti("Split", [x], parts, [OnnxAttribute.Int("axis", axis), OnnxAttribute.Int("num_outputs", parts)]);

    /// <summary>Mean over the last axis, kept.</summary>
    public OnnxValue MeanLast(OnnxValue x) => Op("ReduceMean", [x, I64(-1)], OnnxAttribute.Int("keepdims", 1));
}
