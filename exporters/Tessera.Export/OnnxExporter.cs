using System.Reflection;
using Tessera.Abstractions;
using Tessera.Onnx;
using Tessera.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>A graph input or output: name, element type and shape (ints are fixed sizes, strings name dynamic axes).</summary>
public sealed record ExportTensor(string Name, TensorElementType Type, params object[] Shape)
{
    public static ExportTensor Float(string name, params object[] shape) => new(name, TensorElementType.Float32, shape);
    public static ExportTensor Int64(string name, params object[] shape) => new(name, TensorElementType.Int64, shape);
    public static ExportTensor Bool(string name, params object[] shape) => new(name, TensorElementType.Bool, shape);
}

/// <summary>How to export one module: its inputs and outputs, validation samples, tolerance and variants.</summary>
public sealed record ModuleExportSpec
{
    /// <summary>Graph inputs, in the order the module's mapping (and <c>forward</c>) takes them.</summary>
    public required IReadOnlyList<ExportTensor> Inputs { get; init; }

    /// <summary>Graph outputs, in the order the mapping returns them.</summary>
    public required IReadOnlyList<ExportTensor> Outputs { get; init; }

    /// <summary>
    /// Validation cases: each maps input names to sample tensors. Give several shapes along the dynamic axes (batch
    /// sizes, sequence lengths): a graph that hard-codes a size passes one shape and fails another.
    /// </summary>
    public required IReadOnlyList<IReadOnlyDictionary<string, Tensor>> Samples { get; init; }

    /// <summary>The reference outputs for a sample; by default the module's own <c>forward</c> with the inputs in order.</summary>
    public Func<IReadOnlyDictionary<string, Tensor>, Tensor[]>? Reference { get; init; }

    /// <summary>Max absolute error allowed per output (fp32).</summary>
    public double Tolerance { get; init; } = 1e-4;

    public int Opset { get; init; } = ExportContext.DefaultOpset;
    public string GraphName { get; init; } = "model";
    public IReadOnlyList<ExportVariant> Variants { get; init; } = [];
    public bool ExternalData { get; init; }
}

/// <summary>
/// The generic entry point: any TorchSharp module whose types have mappings (stock layers, registered mappings,
/// <see cref="IOnnxExportable"/> modules) → an ONNX file with named inputs, outputs and dynamic axes, validated
/// against TorchSharp on every sample, with a parity report (<c>&lt;name&gt;.parity.json</c>) beside it.
/// </summary>
/// <example>
/// <code>
/// var spec = new ModuleExportSpec
/// {
///     Inputs = [ExportTensor.Float("x", "batch", 16)],
///     Outputs = [ExportTensor.Float("y", "batch", 4)],
///     Samples = [new Dictionary&lt;string, Tensor&gt; { ["x"] = randn(1, 16) }, new Dictionary&lt;string, Tensor&gt; { ["x"] = randn(5, 16) }],
/// };
/// ExportResult r = OnnxExporter.Export(model, spec, "out/model.onnx");   // r.Passed, r.ReportPath
/// </code>
/// </example>
public static class OnnxExporter
{
    /// <summary>The graph of <paramref name="module"/> (eval mode), without validation.</summary>
    public static ModelProto Build(nn.Module module, ModuleExportSpec spec)
    {
        var ctx = new ExportContext(spec.GraphName, spec.Opset);
        var inputs = spec.Inputs.Select(i => ctx.Graph.Input(i.Name, i.Type, OnnxGraphBuilder.Dims(i.Shape))).ToArray();
        var outputs = ModuleMappings.ExportAll(ctx, module, inputs);
        if (outputs.Length < spec.Outputs.Count)
            throw new ArgumentException($"The module's mapping gives {outputs.Length} output(s) but the spec names {spec.Outputs.Count} ({string.Join(", ", spec.Outputs.Select(o => o.Name))}).");
        for (int i = 0; i < spec.Outputs.Count; i++)
            ctx.Graph.Output(outputs[i], spec.Outputs[i].Name, spec.Outputs[i].Type, OnnxGraphBuilder.Dims(spec.Outputs[i].Shape));
        return ctx.Graph.Build();
    }

    /// <summary>Builds, writes <paramref name="modelPath"/>, validates every sample against TorchSharp and writes the report.</summary>
    public static ExportResult Export(nn.Module module, ModuleExportSpec spec, string modelPath, TextWriter? log = null)
    {
        if (spec.Samples.Count == 0) throw new ArgumentException("Give at least one validation sample (several shapes are better).", nameof(spec));
        module.eval();
        using var noGrad = no_grad();
        var proto = Build(module, spec);
        var reference = spec.Reference ?? (sample => Forward(module, spec.Inputs.Select(i => sample[i.Name]).ToArray()));
        return ValidatedExport.Write(proto, modelPath, parity => Check(spec, reference, parity), spec.Variants, spec.ExternalData, log ?? TextWriter.Null);
    }

    private static List<OutputParity> Check(ModuleExportSpec spec, Func<IReadOnlyDictionary<string, Tensor>, Tensor[]> reference, Parity parity)
    {
        var rows = new List<OutputParity>();
        foreach (var sample in spec.Samples)
        {
            var name = string.Join(" ", spec.Inputs.Select(i => $"{i.Name}[{string.Join("x", sample[i.Name].shape)}]"));
            var expected = reference(sample);
            var got = parity.Run(sample, spec.Outputs.Select(o => o.Name).ToList());
            for (int i = 0; i < spec.Outputs.Count; i++)
                rows.Add(Parity.Compare(name, spec.Outputs[i].Name, expected[i], got[spec.Outputs[i].Name], spec.Tolerance));
        }
        return rows;
    }

    /// <summary>Calls the module's <c>forward</c> with tensors; a tuple result is flattened into its tensors.</summary>
    public static Tensor[] Forward(nn.Module module, Tensor[] inputs)
    {
        var forward = module.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(m => m.Name == "forward" && m.GetParameters().Length == inputs.Length && m.GetParameters().All(p => p.ParameterType == typeof(Tensor)))
            ?? throw new ArgumentException($"{module.GetType().Name} has no forward taking {inputs.Length} tensor(s); set ModuleExportSpec.Reference to compute its outputs.");
        object? result;
        try
        {
            result = forward.Invoke(module, inputs.Cast<object>().ToArray());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
        return result switch
        {
            Tensor t => [t],
            System.Runtime.CompilerServices.ITuple tuple => Enumerable.Range(0, tuple.Length).Select(i => (Tensor)tuple[i]!).ToArray(),
            _ => throw new ArgumentException($"{module.GetType().Name}.forward returned {result?.GetType().Name ?? "null"}; set ModuleExportSpec.Reference."),
        };
    }
}
