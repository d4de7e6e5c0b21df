using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntimeGenAI;
using Tessera.Abstractions;
using Tessera.Export.Llm;
using Tessera.Pipeline.Text;

namespace Tessera.Export.Tests;

/// <summary>
/// The Llama-style export runs under ONNX Runtime GenAI (its own generator loop over the same ONNX file, reading
/// our genai_config.json) and gives the same greedy tokens as Tessera's loop and as PyTorch. GenAI shares the
/// process's one native ONNX Runtime (libonnxruntime-genai loads the libonnxruntime beside it).
/// </summary>
[TestClass]
public sealed class GenAiInteropTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    [TestMethod]
    public void GenAiDecodesTheLlamaExportToTheSameGreedyTokensAsTesseraAndPyTorch()
    {
        var checkpoint = TestSupport.WriteCheckpoint(_temp, "llama", "safetensors", seed: 4);
        var outDir = Path.Combine(_temp, "onnx");
        var result = LlmExporter.Export(checkpoint, outDir);
        Assert.IsTrue(result.Model.Passed);

        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "reference.json")))!;
        var prompt = reference["prompt"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        var pytorch = reference["greedy"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();

        int[] genai;
        using (var model = new Model(outDir))
        using (var p = new GeneratorParams(model))
        {
            p.SetSearchOption("max_length", prompt.Length + 24);
            p.SetSearchOption("do_sample", false);
            using var generator = new Generator(model, p);
            generator.AppendTokens(prompt);
            while (!generator.IsDone()) generator.GenerateNextToken();
            genai = generator.GetSequence(0).ToArray()[prompt.Length..];
        }

        using var engine = TestSupport.Engine(Path.Combine(_temp, "cache"));
        using var compiled = engine.Compile(ModelSource.FromFile(Path.Combine(outDir, "model.onnx")), "cpu:0");
        var tessera = new CausalLmRunner(compiled.Model, CausalLmShape.FromGenAiConfig(result.GenAiConfigPath)).Greedy(prompt.Select(t => (long)t).ToArray(), 24);

        // GenAI stops when it picks the end-of-text token (config.json's eos_token_id) and leaves that token out of the
        // sequence; the other two loops run all 24 steps.
        int eos = (int)result.Config.EosTokenIds.Single();
        int stop = Array.IndexOf(pytorch, eos);
        var expected = stop < 0 ? pytorch : pytorch[..stop];
        Assert.AreEqual(24, expected.Length, $"seed 4 decodes all 24 tokens without the end-of-text token (got {expected.Length})");
        CollectionAssert.AreEqual(expected, genai, $"GenAI vs PyTorch: [{string.Join(",", genai)}] vs [{string.Join(",", expected)}]");
        CollectionAssert.AreEqual(expected, tessera[..expected.Length], "GenAI vs Tessera");
        CollectionAssert.AreEqual(pytorch, tessera, "Tessera vs PyTorch, all 24");
        Assert.IsTrue(genai.Distinct().Count() > 1, "the decode is not one repeated token");
    }
}
