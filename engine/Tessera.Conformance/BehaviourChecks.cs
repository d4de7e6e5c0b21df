using Tessera.Abstractions;
using Tessera.Engine.Devices;
using Tessera.Onnx;

namespace Tessera.Conformance;

/// <summary>
/// verify v2: behaviour a plugin can get wrong while every numeric case passes — answering "yes" to every graph,
/// compiling under strict what it said it cannot run, the wrong exceptions for bad runs, device tensors that cannot be
/// fed back, runs that interfere, use after dispose, models with external data. Each check calls the device
/// directly (not through host partitioning), so it sees the plugin's own behaviour.
/// </summary>
public sealed partial class ConformanceRunner
{
    /// <summary>Name of the node no runtime implements, in <see cref="UnknownOpGraph"/>.</summary>
    public const string UnknownNodeName = "conformance_unknown_op";

    /// <summary>x[2,8] → tessera.conformance.NoSuchOp → y: an op no runtime has.</summary>
    public static byte[] UnknownOpGraph()
    {
        var g = new OnnxGraphBuilder("unknown_op", opset: 21).UseOpset("tessera.conformance", 1);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        var model = g.Build();
        var node = new Tessera.Onnx.Proto.NodeProto { Name = UnknownNodeName, OpType = "NoSuchOp", Domain = "tessera.conformance" };
        node.Input.Add(x.Name);
        node.Output.Add("y");
        model.Graph.Node.Add(node);
        model.Graph.Output.Add(OnnxGraphBuilder.ValueInfo("y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8)));
        return Google.Protobuf.MessageExtensions.ToByteArray(model);
    }

    /// <summary>x[2,8] → x + 1 → y[2,8]: small, exact, and its output can be its next input.</summary>
    public static byte[] AddOneGraph()
    {
        var g = new OnnxGraphBuilder("add_one", opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        var one = g.Initializer("one", Enumerable.Repeat(1f, 16).ToArray(), 2, 8);
        g.Output(g.Node("Add", x, one), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        return g.ToBytes();
    }

    private CompileOptions Strict => new() { Fallback = FallbackPolicy.Strict, UseCompiledModelCache = false };

    private static HostTensor Ramp(int seed) => HostTensor.Create(Enumerable.Range(0, 16).Select(i => (float)(i - 8 + seed) * 0.25f).ToArray(), 2, 8);

    private IEnumerable<CaseResult> BehaviourChecks(RegisteredDevice device)
    {
        yield return CapabilitiesCheck(device);
        var id = device.Info.Id.ToString();
        var dev = device.Device;
        var unknown = ModelSource.FromBytes(UnknownOpGraph(), "conformance.unknown-op");

        yield return Check(id, "contract.unsupported-reported", () =>
        {
            var report = dev.CheckSupport(unknown, Strict);
            var named = report.Nodes.Any(n => n.NodeName == UnknownNodeName && !n.OnDevice) || report.Message.Contains(UnknownNodeName, StringComparison.Ordinal);
            if (report.CanRun) return $"CheckSupport says a graph with tessera.conformance.NoSuchOp '{UnknownNodeName}' can run (no runtime has that op): it must report the nodes it cannot run";
            return named ? null : $"CheckSupport refused the graph but did not name node '{UnknownNodeName}' (neither in Nodes nor in its message: {report.Message})";
        });

        yield return Check(id, "contract.strict-refuses", () =>
        {
            try
            {
                using var m = dev.Compile(unknown, Strict);
                return $"compiled a graph with tessera.conformance.NoSuchOp '{UnknownNodeName}' under strict instead of refusing it";
            }
            catch (TesseraException) { }
            // Every graph the device itself says it cannot run entirely must be refused under strict, naming the nodes.
            var checkedGraphs = 0;
            foreach (var c in OpGraphs.All())
            {
                var source = ModelSource.FromBytes(c.Graph(), c.Name);
                var off = dev.CheckSupport(source, Strict).Nodes.Where(n => !n.OnDevice).ToList();
                if (off.Count == 0) continue;
                checkedGraphs++;
                try
                {
                    using var m = dev.Compile(source, Strict);
                    return $"compiled '{c.Name}' under strict although its CheckSupport says {off[0].OpType} '{off[0].NodeName}' cannot run on {id}";
                }
                catch (FallbackNotAllowedException e) when (off.All(n => e.Message.Contains(n.NodeName, StringComparison.Ordinal) || e.FallbackNodes.Any(f => f.NodeName == n.NodeName)) || off.Count > 8) { }
                catch (FallbackNotAllowedException e) { return $"refused '{c.Name}' under strict without naming the nodes its CheckSupport reported ({string.Join(", ", off.Select(n => n.NodeName))}): {e.Message}"; }
                catch (TesseraException e) { return $"refused '{c.Name}' under strict with {e.GetType().Name}, not FallbackNotAllowedException: {e.Message}"; }
            }
            return null;
        });

        var addOne = ModelSource.FromBytes(AddOneGraph(), "conformance.add-one");
        yield return Check(id, "contract.bad-shape", () =>
        {
            using var m = dev.Compile(addOne, Strict);
            try
            {
                using var _ = m.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(new float[15], 3, 5) });
                return "a run with input 'x' of shape [3, 5] (the model takes [2, 8]) did not fail";
            }
            catch (ModelRunException e) when (e.Message.Contains("'x'", StringComparison.Ordinal)) { return null; }
            catch (ModelRunException e) { return $"ModelRunException does not name input 'x': {e.Message}"; }
            catch (Exception e) { return $"a mis-shaped input raised {e.GetType().Name}, not ModelRunException: {e.Message}"; }
        });

        yield return Check(id, "contract.unknown-output", () =>
        {
            using var m = dev.Compile(addOne, Strict);
            try
            {
                using var _ = m.Run(new Dictionary<string, ITensorValue> { ["x"] = Ramp(0) }, ["no_such_output"]);
                return "a run asking for output 'no_such_output' did not fail";
            }
            catch (ModelRunException e) when (e.Message.Contains("no_such_output", StringComparison.Ordinal)) { return null; }
            catch (ModelRunException e) { return $"ModelRunException does not name output 'no_such_output': {e.Message}"; }
            catch (Exception e) { return $"an unknown output name raised {e.GetType().Name}, not ModelRunException: {e.Message}"; }
        });

        yield return Check(id, "contract.device-tensor-feedback", () =>
        {
            using var m = dev.Compile(addOne, Strict);
            using var start = dev.CopyToDevice(Ramp(0));
            IDeviceTensor current = start;
            var owned = new List<IDeviceTensor>();
            try
            {
                for (int step = 0; step < 3; step++)
                {
                    using var outs = m.Run(new Dictionary<string, ITensorValue> { ["x"] = current });
                    current = outs.Take("y");
                    owned.Add(current);
                    if (current.Device != device.Info.Id) return $"output 'y' is a tensor of {current.Device}, not {id}";
                }
                var got = current.ToHost().AsSpan<float>().ToArray();
                var want = Ramp(0).AsSpan<float>().ToArray().Select(v => v + 3f).ToArray();
                return got.SequenceEqual(want) ? null : $"feeding output 'y' back as input three times gave [{string.Join(", ", got.Take(4))}, ...], expected [{string.Join(", ", want.Take(4))}, ...]";
            }
            finally
            {
                foreach (var t in owned) t.Dispose();
            }
        });

        yield return Check(id, "contract.concurrent-runs", () =>
        {
            var gemm = ModelSource.FromBytes(OpGraphs.All().Single(c => c.Name == "op.gemm-bias-relu").Graph(), "op.gemm-bias-relu");
            using var m = dev.Compile(gemm, Strict);
            const int threads = 8;
            var inputs = Enumerable.Range(0, threads).Select(t => HostTensor.Create(Enumerable.Range(0, 2 * 48).Select(i => MathF.Sin(i * 0.37f + t)).ToArray(), 2, 48)).ToArray();
            float[] RunOne(int t)
            {
                using var o = m.Run(new Dictionary<string, ITensorValue> { ["x"] = inputs[t] });
                return o["y"].ToHost().AsSpan<float>().ToArray();
            }
            var sequential = Enumerable.Range(0, threads).Select(RunOne).ToArray();
            var concurrent = new float[threads][];
            var errors = new Exception?[threads];
            using var barrier = new Barrier(threads);
            var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                try
                {
                    barrier.SignalAndWait();
                    for (int r = 0; r < 4; r++) concurrent[t] = RunOne(t);
                }
                catch (Exception e) { errors[t] = e; }
            })).ToList();
            workers.ForEach(w => w.Start());
            workers.ForEach(w => w.Join());
            if (errors.FirstOrDefault(e => e is not null) is { } error) return $"a concurrent Run failed: {error.GetType().Name}: {error.Message}";
            var bad = Enumerable.Range(0, threads).Where(t => !concurrent[t].SequenceEqual(sequential[t])).ToList();
            return bad.Count == 0 ? null : $"{bad.Count} of {threads} concurrent runs differ from the same run done alone (first: thread {bad[0]})";
        });

        yield return Check(id, "contract.use-after-dispose", () =>
        {
            var m = dev.Compile(addOne, Strict);
            m.Dispose();
            try
            {
                using var _ = m.Run(new Dictionary<string, ITensorValue> { ["x"] = Ramp(0) });
                return "Run on a disposed model did not fail";
            }
            catch (Exception e) when (e is ObjectDisposedException or TesseraException) { }
            catch (Exception e) { return $"Run on a disposed model raised {e.GetType().Name} (expected ObjectDisposedException or a Tessera error): {e.Message}"; }
            try { m.Dispose(); }
            catch (Exception e) { return $"a second Dispose threw {e.GetType().Name}: {e.Message}"; }
            return null;
        });

        yield return Check(id, "contract.external-data", () =>
        {
            var dir = Directory.CreateTempSubdirectory("tessera-verify-external-");
            try
            {
                var path = Path.Combine(dir.FullName, "add_one.onnx");
                var data = OnnxModelFile.Save(Tessera.Onnx.Proto.ModelProto.Parser.ParseFrom(AddOneGraph()), path, new ExternalDataOptions(MinTensorBytes: 0, Alignment: 64));
                if (data is null || !File.Exists(data)) return "the suite could not write the external-data model";
                using var m = dev.Compile(ModelSource.FromFile(path), Strict);
                using var o = m.Run(new Dictionary<string, ITensorValue> { ["x"] = Ramp(1) });
                var got = o["y"].ToHost().AsSpan<float>().ToArray();
                var want = Ramp(1).AsSpan<float>().ToArray().Select(v => v + 1f).ToArray();
                return got.SequenceEqual(want) ? null : $"a model whose weights are in {Path.GetFileName(data)} gave [{string.Join(", ", got.Take(4))}, ...], expected [{string.Join(", ", want.Take(4))}, ...] (external data not read?)";
            }
            finally
            {
                try { dir.Delete(recursive: true); } catch (IOException) { }
            }
        });
    }

    /// <summary>The flags of <see cref="DeviceCapabilities"/>: the only capabilities the host knows.</summary>
    public static IReadOnlyList<string> KnownCapabilities { get; } = typeof(DeviceCapabilities)
        .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!).ToList();

    /// <summary>
    /// A device's capabilities are claims the host acts on (variants by int8/fp16/bf16, see ModelVariants): each must be
    /// a known flag, and compiled-model-cache must hold (the second compile of a graph comes from the cache).
    /// </summary>
    private CaseResult CapabilitiesCheck(RegisteredDevice device) => Check(device.Info.Id.ToString(), "contract.capabilities", () =>
    {
        var unknown = device.Info.Capabilities.Where(c => !KnownCapabilities.Contains(c)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
            return $"declares capabilit{(unknown.Count == 1 ? "y" : "ies")} {string.Join(", ", unknown.Select(c => $"'{c}'"))} that the host does not know; " +
                $"use only DeviceCapabilities flags ({string.Join(", ", KnownCapabilities)}) and put other facts in Properties";
        if (!device.Info.Capabilities.Contains(DeviceCapabilities.CompiledModelCache)) return null;
        // The same small graph every run: one cache entry, which the second compile must come from.
        var g = new OnnxGraphBuilder("cache_probe", opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        g.Output(g.Node("Add", x, g.Initializer("c", Enumerable.Repeat(0.5f, 16).ToArray(), 2, 8)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        var probe = ModelSource.FromBytes(g.ToBytes(), "conformance.cache-probe");
        var cached = new CompileOptions { Fallback = FallbackPolicy.Strict, UseCompiledModelCache = true };
        using (device.Device.Compile(probe, cached)) { }
        using var second = device.Device.Compile(probe, cached);
        return second.Report.FromCache ? null
            : $"declares {DeviceCapabilities.CompiledModelCache}, but compiling the same graph again did not come from its cache (CompileReport.FromCache is false)";
    });

    /// <summary>Checks of a device that says it is unavailable: it must say why, answer CheckSupport, and refuse to compile.</summary>
    public IEnumerable<CaseResult> UnavailableChecks(RegisteredDevice device)
    {
        var id = device.Info.Id.ToString();
        var graph = ModelSource.FromBytes(AddOneGraph(), "conformance.add-one");
        yield return Check(id, "contract.unavailable-throws", () =>
        {
            if (string.IsNullOrWhiteSpace(device.Info.UnavailableReason)) return "the device is unavailable but gives no UnavailableReason";
            var report = device.Device.CheckSupport(graph, Strict);
            if (report.CanRun) return "CheckSupport on an unavailable device says the graph can run";
            try
            {
                using var _ = device.Device.Compile(graph, Strict);
                return "Compile on an unavailable device succeeded";
            }
            catch (DeviceUnavailableException e) when (e.Device == device.Info.Id) { return null; }
            catch (Exception e) { return $"Compile on an unavailable device raised {e.GetType().Name}, not DeviceUnavailableException for {id}: {e.Message}"; }
        });
    }
}
