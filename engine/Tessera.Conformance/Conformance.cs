using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using TensorElementType = Tessera.Abstractions.TensorElementType;
using Tessera.Engine;
using Tessera.Engine.Devices;

namespace Tessera.Conformance;

/// <summary>
/// One conformance case: a graph, run on the device under test and on the reference (ONNX Runtime's CPU EP, called
/// directly), with a named tolerance: every float output element must satisfy |got - ref| ≤ abs + rel·|ref|;
/// integer outputs may differ in at most <paramref name="IntMismatchFraction"/> of their elements.
/// </summary>
public sealed record ConformanceCase(string Name, string Description, Func<byte[]> Graph, double AbsTolerance, double RelTolerance, double IntMismatchFraction = 0)
{
    public string ToleranceText => AbsTolerance == 0 && RelTolerance == 0 ? "exact" : $"abs {AbsTolerance:G2} + rel {RelTolerance:G2}";
}

public enum CaseStatus { Pass, Fail, Skip }

/// <summary>The outcome of one case on one device.</summary>
public sealed record CaseResult(string Device, string Case, CaseStatus Status, string Tolerance, double? MaxAbsError, string Detail, TimeSpan Elapsed);

/// <summary>Runs conformance cases on a device and compares with ONNX Runtime's CPU EP.</summary>
public sealed partial class ConformanceRunner(TesseraEngine engine, double toleranceScale = 1.0, FallbackPolicy fallback = FallbackPolicy.Strict)
{
    /// <summary>
    /// Dynamic dimensions get these sizes: batch 2 (so batching is exercised), past lengths 3, totals (past + new,
    /// the KV-cache convention) 7, others 4.
    /// </summary>
    public static long SizeFor(string symbol) =>
        symbol.Contains("batch", StringComparison.OrdinalIgnoreCase) ? 2
        : symbol.Contains("past", StringComparison.OrdinalIgnoreCase) ? 3
        : symbol.Contains("total", StringComparison.OrdinalIgnoreCase) ? 7 : 4;

    /// <summary>Cases from every .onnx file of a model package folder (the shipped model's graphs).</summary>
    public static IReadOnlyList<ConformanceCase> ModelCases(string packageDirectory) =>
        Directory.GetFiles(packageDirectory, "*.onnx").Order(StringComparer.Ordinal)
            .Select(f => new ConformanceCase($"model.{Path.GetFileNameWithoutExtension(f)}", $"{Path.GetFileName(f)} from {packageDirectory}",
                () => File.ReadAllBytes(f), 2e-3, 2e-3, IntMismatchFraction: 0.02))
            .ToList();

    /// <summary>Checks of the device contract itself (not numerics).</summary>
    public IEnumerable<CaseResult> ContractChecks(RegisteredDevice device)
    {
        var id = device.Info.Id.ToString();
        yield return Check(id, "contract.corrupt-model", () =>
        {
            try
            {
                using var _ = engine.Compile(ModelSource.FromBytes([0x08, 0x07, 0x12, 0xFF, 0x01], "corrupt.onnx"), id, Options);
                return "compiled a corrupt model without an error";
            }
            catch (ModelLoadException) { return null; }
            catch (Exception e) { return $"a corrupt model raised {e.GetType().Name}, not ModelLoadException: {e.Message}"; }
        });
        var graph = ModelSource.FromBytes(OpGraphs.All().Single(c => c.Name == "op.gemm-bias-relu").Graph(), "op.gemm-bias-relu");
        yield return Check(id, "contract.missing-input", () =>
        {
            using var compiled = engine.Compile(graph, id, Options);
            try
            {
                using var _ = compiled.Model.Run(new Dictionary<string, ITensorValue>());
                return "a run without its inputs did not fail";
            }
            catch (ModelRunException) { return null; }
            catch (Exception e) { return $"a run without inputs raised {e.GetType().Name}, not ModelRunException: {e.Message}"; }
        });
        yield return Check(id, "contract.copy-roundtrip", () =>
        {
            var data = Enumerable.Range(0, 48).Select(i => i * 0.5f - 3).ToArray();
            using var t = device.Device.CopyToDevice(HostTensor.Create(data, 2, 24));
            var back = t.ToHost().AsSpan<float>().ToArray();
            return back.SequenceEqual(data) && t.Shape.SequenceEqual(new long[] { 2, 24 }) ? null : "CopyToDevice then ToHost changed the tensor";
        });
        yield return Check(id, "contract.check-support", () =>
        {
            var report = device.Device.CheckSupport(graph, Options);
            return report.CanRun ? null : $"CheckSupport refused a MatMul/Add/Relu graph: {report.Message}";
        });
        foreach (var r in BehaviourChecks(device)) yield return r;
    }

    private CompileOptions Options => new() { Fallback = fallback, UseCompiledModelCache = false };

    private static CaseResult Check(string device, string name, Func<string?> body)
    {
        var watch = Stopwatch.StartNew();
        string? problem;
        try { problem = body(); }
        catch (Exception e) { problem = $"{e.GetType().Name}: {e.Message}"; }
        return new CaseResult(device, name, problem is null ? CaseStatus.Pass : CaseStatus.Fail, "behaviour", null, problem ?? "ok", watch.Elapsed);
    }

    /// <summary>Runs one numeric case on a device.</summary>
    public CaseResult Run(RegisteredDevice device, ConformanceCase c)
    {
        var id = device.Info.Id.ToString();
        var watch = Stopwatch.StartNew();
        var tolerance = c.ToleranceText + (toleranceScale != 1 ? $" x{toleranceScale:G3}" : "");
        try
        {
            var bytes = c.Graph();
            using var referenceOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC, IntraOpNumThreads = 1, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
            using var reference = new InferenceSession(bytes, referenceOptions);
            var feeds = Feeds(reference, c.Name);
            var expected = RunReference(reference, feeds);

            using var compiled = engine.Compile(ModelSource.FromBytes(bytes, c.Name), id, Options);
            using var outputs = compiled.Model.Run(feeds.ToDictionary(f => f.Key, f => (ITensorValue)f.Value));
            double worst = 0;
            var problems = new List<string>();
            foreach (var (name, want) in expected)
            {
                var got = outputs[name].ToHost();
                if (!got.Shape.SequenceEqual(want.Shape))
                {
                    problems.Add($"{name}: shape [{string.Join(", ", got.Shape)}], expected [{string.Join(", ", want.Shape)}]");
                    continue;
                }
                var (error, problem) = Compare(name, want, got, c, toleranceScale);
                worst = Math.Max(worst, error);
                if (problem is not null) problems.Add(problem);
            }
            return new CaseResult(id, c.Name, problems.Count == 0 ? CaseStatus.Pass : CaseStatus.Fail, tolerance, worst,
                problems.Count == 0 ? $"{expected.Count} output(s) within tolerance" : string.Join("; ", problems), watch.Elapsed);
        }
        catch (Exception e) when (e is TesseraException or OnnxRuntimeException or InvalidDataException or NotSupportedException)
        {
            return new CaseResult(id, c.Name, CaseStatus.Fail, tolerance, null, $"{e.GetType().Name}: {e.Message}", watch.Elapsed);
        }
    }

    private static (double Worst, string? Problem) Compare(string name, HostTensor want, HostTensor got, ConformanceCase c, double scale)
    {
        if (want.ElementType != got.ElementType) return (double.NaN, $"{name}: element type {got.ElementType}, expected {want.ElementType}");
        switch (want.ElementType)
        {
            case TensorElementType.Float32:
            {
                var w = want.AsSpan<float>(); var g = got.AsSpan<float>();
                double worst = 0; int bad = 0, first = -1;
                for (int i = 0; i < w.Length; i++)
                {
                    double d = Math.Abs((double)g[i] - w[i]);
                    if (float.IsNaN(w[i]) != float.IsNaN(g[i])) d = double.PositiveInfinity;
                    else if (float.IsNaN(w[i])) d = 0;
                    worst = Math.Max(worst, d);
                    if (d > (c.AbsTolerance + c.RelTolerance * Math.Abs(w[i])) * scale) { bad++; if (first < 0) first = i; }
                }
                return (worst, bad == 0 ? null : $"{name}: {bad} of {w.Length} elements outside tolerance (first at {first}: {g[first]:G6} vs {w[first]:G6}; max abs error {worst:E2})");
            }
            case TensorElementType.Int64:
            {
                var w = want.AsSpan<long>(); var g = got.AsSpan<long>();
                int bad = 0;
                for (int i = 0; i < w.Length; i++) if (w[i] != g[i]) bad++;
                return (bad, bad <= c.IntMismatchFraction * w.Length ? null : $"{name}: {bad} of {w.Length} integers differ (allowed {c.IntMismatchFraction:P0})");
            }
            default:
                return (0, null);
        }
    }

    /// <summary>Deterministic inputs for a graph from its input metadata: floats ~ N(0, 0.5²), int64 ids in [0, 8), masks 1.</summary>
    public static Dictionary<string, HostTensor> Feeds(InferenceSession session, string caseName)
    {
        var rng = new Random(caseName.Aggregate(17, (h, ch) => h * 31 + ch));
        var feeds = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
        foreach (var (name, meta) in session.InputMetadata)
        {
            var shape = meta.Dimensions.Select((d, i) => d >= 0 ? d : SizeFor(meta.SymbolicDimensions[i])).ToArray();
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var type = meta.ElementDataType;
            if ((int)type == (int)TensorElementType.Float32)
                feeds[name] = HostTensor.Create(Enumerable.Range(0, (int)n).Select(_ => (float)(Gaussian(rng) * 0.5)).ToArray(), shape);
            else if (meta.ElementType == typeof(long))
                feeds[name] = HostTensor.Create(Enumerable.Range(0, (int)n).Select(_ => name.Contains("mask") ? 1L : rng.Next(0, 8)).ToArray(), shape);
            else throw new NotSupportedException($"input '{name}' has element type {meta.ElementType.Name}; the suite feeds float32 and int64 inputs.");
        }
        return feeds;
    }

    private static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    private static Dictionary<string, HostTensor> RunReference(InferenceSession session, Dictionary<string, HostTensor> feeds)
    {
        var values = feeds.Select(f => f.Value.ElementType == TensorElementType.Float32
            ? OrtValue.CreateTensorValueFromMemory(f.Value.AsSpan<float>().ToArray(), f.Value.Shape)
            : OrtValue.CreateTensorValueFromMemory(f.Value.AsSpan<long>().ToArray(), f.Value.Shape)).ToList();
        try
        {
            using var options = new RunOptions();
            var names = session.OutputNames;
            using var results = session.Run(options, feeds.Keys.ToList(), values, names);
            var outputs = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
            for (int i = 0; i < names.Count; i++)
            {
                var info = results[i].GetTensorTypeAndShape();
                outputs[names[i]] = (int)info.ElementDataType == (int)TensorElementType.Float32
                    ? HostTensor.Create(results[i].GetTensorDataAsSpan<float>().ToArray(), info.Shape)
                    : (int)info.ElementDataType == (int)TensorElementType.Int64
                        ? HostTensor.Create(results[i].GetTensorDataAsSpan<long>().ToArray(), info.Shape)
                        : throw new NotSupportedException($"output '{names[i]}' is {info.ElementDataType}; the suite compares float32 and int64 outputs.");
            }
            return outputs;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }
}
