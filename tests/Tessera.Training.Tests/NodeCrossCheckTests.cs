using Tessera.Models.Export;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Export;
using Tessera.TestSupport;
using Tessera.TinyPackages;
using static TorchSharp.torch;

namespace Tessera.Training.Tests;

/// <summary>
/// Exported files load in a second ONNX Runtime client (npm onnxruntime-node, pinned in tools/ort-node-check and
/// installed by .ci/run) and give the same outputs as ONNX Runtime for .NET on the same inputs.
/// </summary>
[TestClass]
public sealed class NodeCrossCheckTests
{
    private static string ToolDir => Path.Combine(TestPaths.RepoRoot, "tools", "ort-node-check");

    [TestMethod]
    public void ExportedModelsGiveTheSameOutputsInOnnxRuntimeNode()
    {
        if (!Directory.Exists(Path.Combine(ToolDir, "node_modules", "onnxruntime-node")))
            throw new AssertInconclusiveException($"onnxruntime-node is not installed; run: (cd {ToolDir} && npm ci --ignore-scripts)");
        var dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "node-" + Guid.NewGuid().ToString("N"));
        try
        {
            var model = TinyPackageWriter.Write(Path.Combine(dir, "model"), seed: 8);
            manual_seed(3);
            var cases = new Dictionary<string, Dictionary<string, Tensor>>
            {
                ["vq.onnx"] = new() { ["image"] = rand(2, 3, 64, 64) * 2 - 1 },
                ["decoder.onnx"] = new()
                {
                    ["x_t"] = randn(2, 3, 64, 64), ["t"] = tensor(new[] { 0.3f, 0.8f }),
                    ["prior"] = randint(0, 33, [2, 16, 16]), ["glyphs"] = tensor(new long[32].Select((_, i) => i % 16 < 4 ? 77L + i % 16 : 0L).ToArray(), [2, 16]),
                },
            };
            var arFeeds = new Dictionary<string, Tensor>
            {
                ["input_ids"] = randint(0, 300, [2, 5]), ["position_ids"] = arange(5).view(1, 5, 1).expand(2, 5, 3).contiguous(),
                ["attention_mask"] = ones(2, 5, dtype: ScalarType.Int64),
            };
            for (int l = 0; l < 2; l++)
            {
                arFeeds[$"past_key_values.{l}.key"] = randn(2, 2, 3, 12);
                arFeeds[$"past_key_values.{l}.value"] = randn(2, 2, 3, 12);
            }
            arFeeds["attention_mask"] = ones(2, 8, dtype: ScalarType.Int64);
            cases["ar.onnx"] = arFeeds;

            foreach (var (file, feeds) in cases)
            {
                var path = Path.Combine(model, file);
                using var parity = new Parity(path);
                var dotnet = parity.Run(feeds);
                var node = RunNode(path, feeds, dir);
                foreach (var (name, expected) in dotnet)
                {
                    var r = Parity.Compare($"node {file}", name, expected, node[name], 1e-5);
                    Assert.IsTrue(r.Passed, $"{file} {name}: max abs difference {r.MaxAbsError:E2} between ONNX Runtime for .NET and onnxruntime-node");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Dictionary<string, Tensor> RunNode(string model, Dictionary<string, Tensor> feeds, string dir)
    {
        var inputs = new JsonObject();
        foreach (var (name, t) in feeds)
            inputs[name] = new JsonObject
            {
                ["type"] = t.dtype == ScalarType.Int64 ? "int64" : "float32",
                ["dims"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data"] = t.dtype == ScalarType.Int64
                    ? new JsonArray(t.data<long>().ToArray().Select(v => (JsonNode)v).ToArray())
                    : new JsonArray(t.contiguous().data<float>().ToArray().Select(v => (JsonNode)v).ToArray()),
            };
        var inPath = Path.Combine(dir, "in.json");
        var outPath = Path.Combine(dir, "out.json");
        File.WriteAllText(inPath, inputs.ToJsonString());
        var psi = new ProcessStartInfo("node") { WorkingDirectory = ToolDir, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "run.js", model, inPath, outPath }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.AreEqual(0, p.ExitCode, err);
        var outputs = JsonNode.Parse(File.ReadAllText(outPath))!.AsObject();
        return outputs.ToDictionary(o => o.Key, o =>
        {
            var dims = o.Value!["dims"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            var data = o.Value["data"]!.AsArray();
            return o.Value["type"]!.GetValue<string>() == "int64"
                ? tensor(data.Select(v => v!.GetValue<long>()).ToArray(), dims)
                : tensor(data.Select(v => v!.GetValue<float>()).ToArray(), dims);
        });
    }
}
