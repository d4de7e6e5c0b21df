using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Pipeline.Text;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>
/// `tessera export llm` on GPT-2- and Llama-style checkpoints that PyTorch wrote (random weights in Hugging Face's
/// names, both weight formats, shards), run through the engine on cpu:0 and compared with PyTorch's own outputs:
/// logits at batch 2 within 1e-4, and a 24-token greedy decode with the KV cache token for token. The PyTorch
/// forward passes (Reference/hf_decoder.py) are our reading of the published architectures, not Hugging Face's code.
/// </summary>
[TestClass]
public sealed class CheckpointExportTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    [TestMethod]
    public void Gpt2SafetensorsCheckpointMatchesPyTorch() => ExportAndCompare("gpt2", "safetensors", expectedIgnored: 2);

    [TestMethod]
    public void Gpt2TorchSaveCheckpointMatchesPyTorch() => ExportAndCompare("gpt2", "bin", expectedIgnored: 2);

    [TestMethod]
    public void LlamaSafetensorsCheckpointMatchesPyTorch() => ExportAndCompare("llama", "safetensors", expectedIgnored: 0);

    [TestMethod]
    public void LlamaTorchSaveCheckpointMatchesPyTorch() => ExportAndCompare("llama", "bin", expectedIgnored: 0);

    [TestMethod]
    public void LlamaShardedSafetensorsCheckpointMatchesPyTorch() => ExportAndCompare("llama", "sharded", expectedIgnored: 0);

    private void ExportAndCompare(string arch, string format, int expectedIgnored)
    {
        var checkpoint = TestSupport.WriteCheckpoint(_temp, arch, format);
        var outDir = Path.Combine(_temp, "onnx");
        var (code, stdout, stderr) = TestSupport.Tessera("export", "llm", "--checkpoint", checkpoint, "--out", outDir);
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(stdout, "0 missing, 0 unexpected");

        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "model.parity.json")))!;
        Assert.IsTrue(report["passed"]!.GetValue<bool>());
        Assert.AreEqual(arch, report["architecture"]!.GetValue<string>());
        Assert.AreEqual(expectedIgnored, report["tensors"]!["ignored"]!.GetValue<int>());

        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "reference.json")))!;
        var ids = reference["ids"]!.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();
        var expectedLogits = reference["logits"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
        var prompt = reference["prompt"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        var expectedTokens = reference["greedy"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        Assert.AreEqual(2, ids.Length, "the logits case is batch 2");
        Assert.AreEqual(24, expectedTokens.Length);

        using var engine = TestSupport.Engine(Path.Combine(_temp, "cache"));
        using var compiled = engine.Compile(ModelSource.FromFile(Path.Combine(outDir, "model.onnx")), "cpu:0");
        var runner = new CausalLmRunner(compiled.Model, CausalLmShape.FromGenAiConfig(Path.Combine(outDir, "genai_config.json")));
        var logits = runner.Logits(ids);
        Assert.AreEqual(expectedLogits.Length, logits.Length);
        double worst = expectedLogits.Zip(logits, (e, g) => Math.Abs(e - g)).Max();
        Assert.IsTrue(worst <= 1e-4, $"{arch}/{format}: max |logit - PyTorch| = {worst:E2} > 1e-4");
        Assert.IsTrue(expectedLogits.Max() - expectedLogits.Min() > 1, "logits are not degenerate");

        var tokens = runner.Greedy(prompt, 24);
        CollectionAssert.AreEqual(expectedTokens, tokens, $"{arch}/{format}: greedy tokens differ from PyTorch's");
    }

    // ---------------------------------------------------------------- bad checkpoints

    private (int Code, string Err) ExportBroken(string checkpoint)
    {
        var (code, stdout, stderr) = TestSupport.Tessera("export", "llm", "--checkpoint", checkpoint, "--out", Path.Combine(_temp, "bad-out"));
        Assert.AreNotEqual(0, code, stdout);
        // Progress goes to stderr too; the failure itself is one "error:" line, the last, with no stack trace.
        var lines = stderr.Trim().Split('\n');
        Assert.AreEqual(1, lines.Count(l => l.StartsWith("error: ")), $"one error line:\n{stderr}");
        StringAssert.StartsWith(lines[^1], "error: ");
        Assert.IsFalse(stderr.Contains("   at "), stderr);
        return (code, lines[^1]);
    }

    private static void RewriteWeights(string checkpoint, Action<Dictionary<string, Tensor>> change)
    {
        var path = Path.Combine(checkpoint, "model.safetensors");
        var tensors = Safetensors.LoadStateDict(path);
        change(tensors);
        File.Delete(path);
        Safetensors.SaveStateDict(path, tensors);
    }

    [TestMethod]
    public void MissingExtraAndMisShapedTensorsAreEachNamedInOneLine()
    {
        var good = TestSupport.WriteCheckpoint(_temp, "llama", "safetensors");
        var missing = CopyOf(good, "missing");
        RewriteWeights(missing, t => t.Remove("model.norm.weight"));
        StringAssert.Contains(ExportBroken(missing).Err, "missing 1 tensor (model.norm.weight)");

        var extra = CopyOf(good, "extra");
        RewriteWeights(extra, t => t["model.layers.0.mlp.extra_proj.weight"] = zeros(4, 4));
        StringAssert.Contains(ExportBroken(extra).Err, "unexpected 1 tensor (model.layers.0.mlp.extra_proj.weight)");

        var shaped = CopyOf(good, "shape");
        RewriteWeights(shaped, t => t["model.layers.1.mlp.up_proj.weight"] = zeros(47, 32));
        StringAssert.Contains(ExportBroken(shaped).Err, "wrong shape 1 tensor (model.layers.1.mlp.up_proj.weight: checkpoint [47, 32], model [48, 32])");

        var all = CopyOf(good, "all");
        RewriteWeights(all, t =>
        {
            t.Remove("lm_head.weight");
            t["stray"] = zeros(1);
        });
        var err = ExportBroken(all).Err;
        StringAssert.Contains(err, "missing 1 tensor (lm_head.weight)");
        StringAssert.Contains(err, "unexpected 1 tensor (stray)");
    }

    [TestMethod]
    public void UnsupportedConfigFieldsAreRefusedByName()
    {
        var good = TestSupport.WriteCheckpoint(_temp, "llama", "safetensors");
        foreach (var (field, value, expected) in new[]
                 {
                     ("rope_scaling", (JsonNode)new JsonObject { ["type"] = "linear", ["factor"] = 2.0 }, "\"rope_scaling\""),
                     ("sliding_window", (JsonNode)JsonValue.Create(4096), "field \"sliding_window\" is not supported by the llama builder"),
                     ("hidden_act", (JsonNode)JsonValue.Create("gelu"), "hidden_act gelu is not supported"),
                 })
        {
            var dir = CopyOf(good, field);
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            config[field] = value;
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            StringAssert.Contains(ExportBroken(dir).Err, expected);
        }
    }

    [TestMethod]
    public void ACorruptOrMissingWeightFileIsNamed()
    {
        var good = TestSupport.WriteCheckpoint(_temp, "gpt2", "bin");
        var corrupt = CopyOf(good, "corrupt");
        var bin = Path.Combine(corrupt, "pytorch_model.bin");
        var bytes = File.ReadAllBytes(bin);
        File.WriteAllBytes(bin, bytes[..(bytes.Length / 3)]);
        StringAssert.Contains(ExportBroken(corrupt).Err, "pytorch_model.bin could not be read");

        var empty = Path.Combine(_temp, "empty");
        Directory.CreateDirectory(empty);
        StringAssert.Contains(ExportBroken(empty).Err, "has no config.json");
        File.Copy(Path.Combine(good, "config.json"), Path.Combine(empty, "config.json"));
        StringAssert.Contains(ExportBroken(empty).Err, "has no weights");
    }

    private string CopyOf(string dir, string name)
    {
        var copy = Path.Combine(_temp, name);
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        return copy;
    }
}
