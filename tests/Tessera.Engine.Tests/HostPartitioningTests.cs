using System.Diagnostics;
using Tessera.Abstractions;
using Tessera.Engine.Partitioning;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Engine.Tests;

/// <summary>
/// Host-side fallback: a device that runs only some ops (the subset-npu fixture, no CPU fallback of its own) gets the
/// parts it can run, the CPU the rest, and the results are those of the CPU alone.
/// </summary>
[TestClass]
public sealed class HostPartitioningTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    /// <summary>x → MatMul → Softmax → MatMul → Sigmoid → y, plus a branch x → Relu that joins at the end.</summary>
    private static byte[] Chain()
    {
        var g = new OnnxGraphBuilder("chain", opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4));
        var w1 = g.Initializer("w1", Enumerable.Range(0, 16).Select(i => (i % 5 - 2) * 0.3f).ToArray(), 4, 4);
        var w2 = g.Initializer("w2", Enumerable.Range(0, 16).Select(i => (i % 3 - 1) * 0.7f).ToArray(), 4, 4);
        var a = g.Node("MatMul", x, w1);
        var s = g.Node("Softmax", [a], [OnnxAttribute.Int("axis", -1)]);
        var b = g.Node("MatMul", s, w2);
        var r = g.Node("Relu", x);
        var sum = g.Node("Add", g.Node("Sigmoid", b), r);
        g.Output(sum, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4));
        return g.ToBytes();
    }

    [TestMethod]
    public void PartitionerCutsMaximalRunsAndGroupsIndependentNodesWithTheirDevice()
    {
        var model = ModelProto.Parser.ParseFrom(Chain());
        var nodes = model.Graph.Node;
        var onDevice = nodes.Select(n => n.OpType is not ("Softmax" or "Sigmoid")).ToArray();
        var parts = GraphPartitioner.Partition(model.Graph, onDevice);

        string Ops(GraphPartition p) => string.Join(",", p.NodeIndices.Select(i => nodes[i].OpType));
        Assert.AreEqual(5, parts.Count, string.Join(" | ", parts.Select(Ops)));
        CollectionAssert.AreEqual(new[] { true, false, true, false, true }, parts.Select(p => p.OnDevice).ToArray());
        // Relu depends only on x: scheduled with the first device partition rather than cutting later.
        Assert.AreEqual("MatMul,Relu", Ops(parts[0]));
        Assert.AreEqual("Softmax", Ops(parts[1]));
        Assert.AreEqual("Add,Identity", Ops(parts[4]));
        CollectionAssert.AreEqual(new[] { "x" }, parts[0].Inputs.ToArray(), "initializers are not partition inputs");
        CollectionAssert.AreEquivalent(new[] { nodes[0].Output[0], nodes[3].Output[0] }, parts[0].Outputs.ToArray());
        CollectionAssert.AreEquivalent(new[] { parts[3].Outputs[0], nodes[3].Output[0] }, parts[4].Inputs.ToArray());
        CollectionAssert.AreEqual(new[] { "y" }, parts[4].Outputs.ToArray());

        var typed = GraphPartitioner.Extract(model, parts[2], name => new ValueInfoProto { Name = name });
        CollectionAssert.AreEqual(new[] { "w2" }, typed.Graph.Initializer.Select(t => t.Name).ToArray(), "a partition carries the initializers its nodes use, and only those");
    }

    [TestMethod]
    public void NameNodesNamesUnnamedAndRepeatedNodesOnly()
    {
        var graph = new GraphProto();
        graph.Node.Add(new NodeProto { OpType = "Relu" });
        graph.Node.Add(new NodeProto { OpType = "Relu", Name = "a" });
        graph.Node.Add(new NodeProto { OpType = "Add", Name = "a" });
        Assert.IsTrue(GraphPartitioner.NameNodes(graph));
        CollectionAssert.AreEqual(new[] { "Relu_0", "a", "Add_2" }, graph.Node.Select(n => n.Name).ToArray());
        Assert.IsFalse(GraphPartitioner.NameNodes(graph), "already unique: unchanged");
    }

    private TesseraEngine Engine() => new(TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("cpu"), TestPaths.Fixture("subset-npu")));

    [TestMethod]
    public void UnderAllowTheHostRunsTheRefusedNodesOnTheCpuAndGetsTheCpusBytes()
    {
        using var engine = Engine();
        var source = ModelSource.FromBytes(Chain(), "chain");
        var allow = new CompileOptions { Fallback = FallbackPolicy.Allow, UseCompiledModelCache = false };
        using var npu = engine.Compile(source, "npu:0", allow);
        using var cpu = engine.Compile(source, "cpu:0", allow);
        var model = npu.Model as PartitionedModel ?? throw new AssertFailedException($"not partitioned: {npu.Model.GetType().Name}");
        Assert.AreEqual(5, model.Partitions.Count);
        Assert.AreEqual(new DeviceId("npu", 0), model.Device);
        StringAssert.StartsWith(npu.FallbackNotes[0], "the host cut 'chain' into 5 partitions: 3 on npu:0, 2 on cpu:0");
        Assert.IsTrue(npu.FallbackNotes.Any(n => n.StartsWith("partition 2 of 5 on cpu:0: 1 node(s) (Softmax 'Softmax'", StringComparison.Ordinal)), string.Join("\n", npu.FallbackNotes));
        CollectionAssert.AreEquivalent(new[] { "Softmax", "Sigmoid" }, npu.Model.Report.FallbackNodes.Select(n => n.OpType).ToArray());

        var x = HostTensor.Create(Enumerable.Range(0, 12).Select(i => MathF.Cos(i) * 2).ToArray(), 3, 4);
        using var a = npu.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = x });
        using var b = cpu.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = x });
        Assert.AreEqual(new DeviceId("npu", 0), a["y"].Device, "outputs are tensors of the requested device");
        CollectionAssert.AreEqual(b["y"].ToHost().AsSpan<float>().ToArray(), a["y"].ToHost().AsSpan<float>().ToArray());

        // A device tensor of the NPU fed back in, and the contract's errors for bad runs.
        using var again = npu.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = a["y"] });
        Assert.AreEqual(3L, again["y"].Shape[0]);
        var bad = Assert.ThrowsExactly<ModelRunException>(() => npu.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(new float[6], 2, 3) }));
        StringAssert.Contains(bad.Message, "'x'");
        var unknown = Assert.ThrowsExactly<ModelRunException>(() => npu.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = x }, ["nope"]));
        StringAssert.Contains(unknown.Message, "'nope'");
    }

    [TestMethod]
    public void UnderStrictTheDeviceRefusalNamesTheNodes()
    {
        using var engine = Engine();
        var e = Assert.ThrowsExactly<FallbackNotAllowedException>(() =>
            engine.Compile(ModelSource.FromBytes(Chain(), "chain"), "npu:0", new CompileOptions { Fallback = FallbackPolicy.Strict, UseCompiledModelCache = false }));
        StringAssert.Contains(e.Message, "Softmax 'Softmax'");
        StringAssert.Contains(e.Message, "Sigmoid 'Sigmoid'");
    }

    [TestMethod]
    public void AGraphTheDeviceRunsWhollyIsNotPartitioned()
    {
        using var engine = Engine();
        using var m = engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear"), "npu:0", new CompileOptions { Fallback = FallbackPolicy.Allow, UseCompiledModelCache = false });
        Assert.IsNotInstanceOfType<PartitionedModel>(m.Model);
        Assert.AreEqual(0, m.FallbackNotes.Count);
    }

    // ---- the must-show: tessera generate on the shipped model ----

    private (int Code, string Out, string Err) Tessera(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["TESSERA_CACHE_DIR"] = Path.Combine(_temp, "cache");
        psi.Environment.Remove("TESSERA_PLUGIN_PATH");
        psi.Environment.Remove("TESSERA_MODEL");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(180_000)) { p.Kill(entireProcessTree: true); Assert.Fail("tessera did not finish within 3 minutes"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    [TestMethod]
    public void GenerateWithAllowOnASubsetNpuGivesTheCpuBytesAndListsThePartitions()
    {
        var onCpu = Path.Combine(_temp, "cpu.png");
        var onNpu = Path.Combine(_temp, "npu.png");
        var (code, _, err) = Tessera("generate", Prompt, "-o", onCpu, "--seed", "3", "--steps", "4", "--device", "cpu:0");
        Assert.AreEqual(0, code, err);
        (code, _, err) = Tessera("generate", Prompt, "-o", onNpu, "--seed", "3", "--steps", "4", "--device", "npu:0",
            "--fallback", "allow", "--plugin-path", TestPaths.Fixture("subset-npu"));
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(err, "AR on npu:0, decoder on npu:0");
        StringAssert.Contains(err, "fallback: the host cut");
        StringAssert.Contains(err, "ar.onnx' into ");
        StringAssert.Contains(err, "decoder.onnx' into ");
        StringAssert.Matches(err, new System.Text.RegularExpressions.Regex(@"fallback: partition \d+ of \d+ on cpu:0: \d+ node\(s\) \(Softmax '"));
        CollectionAssert.AreEqual(File.ReadAllBytes(onCpu), File.ReadAllBytes(onNpu), "the cut model paints the CPU's image, byte for byte");

        (code, _, err) = Tessera("generate", Prompt, "-o", Path.Combine(_temp, "strict.png"), "--seed", "3", "--steps", "4", "--device", "npu:0",
            "--fallback", "strict", "--plugin-path", TestPaths.Fixture("subset-npu"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, "cannot run entirely on npu:0");
        StringAssert.Matches(err, new System.Text.RegularExpressions.Regex(@"(Softmax|Sigmoid|Sin|Cos) '"));
        Assert.AreEqual(1, err.Trim().Split('\n').Length, "one line, no stack trace: " + err);
        Assert.IsFalse(File.Exists(Path.Combine(_temp, "strict.png")));
    }
}
