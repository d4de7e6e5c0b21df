using System.Diagnostics;
using System.Text.Json;

namespace Tessera.Engine.Tests;

/// <summary>What a vendor whose runtime is not ONNX Runtime needs before writing kernels: the op inventory and the graphs.</summary>
[TestClass]
public sealed class PluginVerifyToolsTests
{
    private static (int Code, string Out, string Err) Tessera(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.IsTrue(p.WaitForExit(60_000), "tessera finished within a minute");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [TestMethod]
    public void ListOpsNamesEveryOpTheShippedModelUsesWithItsOpsetAndTheInt8ContribOp()
    {
        var (code, stdout, stderr) = Tessera("plugin", "verify", "--list-ops", "--json");
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.AreEqual(21, doc.RootElement.GetProperty("opsets").GetProperty("ai.onnx").GetInt32());
        var ops = doc.RootElement.GetProperty("ops").EnumerateArray().ToDictionary(o => o.GetProperty("op").GetString()!, o => o.GetProperty("usedBy").EnumerateArray().Select(u => u.GetString()!).ToList());
        foreach (var op in new[] { "ai.onnx.MatMul", "ai.onnx.Softmax", "ai.onnx.Conv", "ai.onnx.Gelu", "ai.onnx.LayerNormalization", "ai.onnx.Gemm" }) Assert.IsTrue(ops.ContainsKey(op), op);
        CollectionAssert.Contains(ops["ai.onnx.Gemm"], "op.gemm-bias-relu", "the Gemm case contains a Gemm");
        CollectionAssert.Contains(ops["com.microsoft.MatMulNBits"], "model.ar (--int8)");
        CollectionAssert.DoesNotContain(ops["com.microsoft.MatMulNBits"], "model.ar", "the shipped fp32 graph has no contrib op");
    }

    /// <summary>What each op case is named for; a new case must be listed here, so its name is checked too.</summary>
    private static readonly Dictionary<string, string[]> OpsNamedByCase = new()
    {
        ["op.matmul"] = ["MatMul"],
        ["op.matmul-bias-relu"] = ["MatMul", "Add", "Relu"],
        ["op.gemm-bias-relu"] = ["Gemm", "Relu"],
        ["op.softmax"] = ["Softmax"],
        ["op.layernorm"] = ["LayerNormalization"],
        ["op.rmsnorm"] = ["Pow", "ReduceMean", "Sqrt", "Div", "Mul"],
        ["op.gelu-silu"] = ["Gelu", "Sigmoid", "Mul"],
        ["op.attention"] = ["MatMul", "Transpose", "Softmax"],
        ["op.conv-patchify"] = ["Conv"],
        ["op.embedding"] = ["Gather"],
        ["op.layout"] = ["Reshape", "Transpose", "Concat", "Slice"],
        ["op.argmax-topk"] = ["ArgMax", "TopK"],
    };

    [TestMethod]
    public void EveryOpCaseContainsTheOpsItIsNamedFor()
    {
        var (code, stdout, stderr) = Tessera("plugin", "verify", "--list-ops", "--json");
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var casesByOp = doc.RootElement.GetProperty("ops").EnumerateArray()
            .ToDictionary(o => o.GetProperty("op").GetString()!, o => o.GetProperty("usedBy").EnumerateArray().Select(u => u.GetString()!).ToHashSet());
        var opCases = casesByOp.Values.SelectMany(c => c).Where(c => c.StartsWith("op.", StringComparison.Ordinal)).ToHashSet();
        CollectionAssert.AreEquivalent(OpsNamedByCase.Keys.ToList(), opCases.ToList(), "every op case is listed with the ops its name promises");
        foreach (var (name, ops) in OpsNamedByCase)
            foreach (var op in ops)
                Assert.IsTrue(casesByOp.TryGetValue($"ai.onnx.{op}", out var users) && users.Contains(name), $"{name} contains no {op}");
    }

    [TestMethod]
    public void DumpGraphsWritesEveryConformanceGraphWithAnIndex()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var (code, stdout, stderr) = Tessera("plugin", "verify", "--dump-graphs", dir, "--no-models");
            Assert.AreEqual(0, code, stdout + stderr);
            using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "index.json")));
            var cases = index.RootElement.EnumerateArray().ToList();
            Assert.IsTrue(cases.Count >= 10);
            foreach (var c in cases)
            {
                var file = Path.Combine(dir, c.GetProperty("file").GetString()!);
                Assert.IsTrue(new FileInfo(file).Length > 0, file);
                using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(file); // each is a valid model
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
