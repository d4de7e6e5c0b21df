using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>One output's agreement between TorchSharp and ONNX Runtime.</summary>
/// <param name="MaxAbsError">max |onnx - torch|.</param>
/// <param name="MaxRelError">max |onnx - torch| / (|torch| + 1e-6) over elements where |torch| > 1e-3 (relative error near zero means little).</param>
public sealed record OutputParity(string Case, string Output, long[] Shape, double MaxAbsError, double MaxRelError, double Tolerance)
{
    public bool Passed => MaxAbsError <= Tolerance;
}

/// <summary>
/// Runs an exported graph in ONNX Runtime next to the TorchSharp module on the same inputs and compares outputs
/// against a stated absolute tolerance.
/// </summary>
public sealed class Parity : IDisposable
{
    private readonly InferenceSession _session;

    public Parity(byte[] onnx)
    {
        using var options = Options();
        _session = new InferenceSession(onnx, options);
    }

    /// <summary>Loads the model from a file (its external data, if any, is resolved beside it): validates what was written.</summary>
    public Parity(string onnxPath)
    {
        using var options = Options();
        _session = new InferenceSession(onnxPath, options);
    }

    private static SessionOptions Options() =>
        new() { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };

    /// <summary>Runs ONNX Runtime; every output comes back as a CPU torch tensor.</summary>
    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
    {
        var names = inputs.Keys.ToArray();
        var values = new List<OrtValue>();
        try
        {
            foreach (var n in names)
            {
                var t = inputs[n].cpu().contiguous();
                values.Add(t.dtype switch
                {
                    // (TorchSharp cannot copy out an empty tensor, e.g. a past of length 0.)
                    ScalarType.Float32 => OrtValue.CreateTensorValueFromMemory(t.numel() == 0 ? [] : t.data<float>().ToArray(), t.shape),
                    ScalarType.Int64 => OrtValue.CreateTensorValueFromMemory(t.numel() == 0 ? [] : t.data<long>().ToArray(), t.shape),
                    ScalarType.Bool => OrtValue.CreateTensorValueFromMemory(t.numel() == 0 ? [] : t.data<bool>().ToArray(), t.shape),
                    _ => throw new NotSupportedException($"Parity input '{n}' has dtype {t.dtype}."),
                });
            }
            var outNames = outputs?.ToArray() ?? _session.OutputNames.ToArray();
            using var results = _session.Run(new RunOptions(), names, values, outNames);
            var map = new Dictionary<string, Tensor>();
            for (int i = 0; i < outNames.Length; i++)
            {
                var info = results[i].GetTensorTypeAndShape();
                map[outNames[i]] = info.ElementDataType switch
                {
                    Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => tensor(results[i].GetTensorDataAsSpan<float>().ToArray(), info.Shape),
                    Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int64 => tensor(results[i].GetTensorDataAsSpan<long>().ToArray(), info.Shape),
                    var other => throw new NotSupportedException($"Parity output '{outNames[i]}' has type {other}."),
                };
            }
            return map;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Compares one output.</summary>
    public static OutputParity Compare(string caseName, string output, Tensor expected, Tensor actual, double tolerance)
    {
        using var scope = NewDisposeScope();
        if (!expected.shape.SequenceEqual(actual.shape))
            return new OutputParity(caseName, output, actual.shape, double.PositiveInfinity, double.PositiveInfinity, tolerance);
        var e = expected.to(float64);
        var diff = (actual.to(float64) - e).abs();
        double abs = diff.numel() == 0 ? 0 : diff.max().item<double>();
        var significant = e.abs().gt(1e-3);
        double rel = significant.any().item<bool>() ? (diff / (e.abs() + 1e-6)).masked_select(significant).max().item<double>() : 0;
        return new OutputParity(caseName, output, actual.shape, abs, rel, tolerance);
    }

    public static JsonObject ToJson(IEnumerable<OutputParity> rows) => new()
    {
        ["passed"] = rows.All(r => r.Passed),
        ["outputs"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
        {
            ["case"] = r.Case, ["output"] = r.Output, ["shape"] = new JsonArray(r.Shape.Select(d => (JsonNode)d).ToArray()),
            // A shape mismatch has no finite error: written as null with the note.
            ["maxAbsError"] = Finite(r.MaxAbsError), ["maxRelError"] = Finite(r.MaxRelError), ["tolerance"] = r.Tolerance, ["passed"] = r.Passed,
            ["note"] = double.IsFinite(r.MaxAbsError) ? null : "output shape differs from the reference's",
        }).ToArray()),
    };

    private static JsonNode? Finite(double v) => double.IsFinite(v) ? v : null;

    public void Dispose() => _session.Dispose();
}
