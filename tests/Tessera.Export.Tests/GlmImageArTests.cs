using System.Text.Json.Nodes;
using Tessera.Export.Checkpoints;
using Tessera.GlmImage;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>
/// GLM-Image's AR stage from a vision_language_encoder folder in the official layout: a tiny random checkpoint that
/// PyTorch wrote (Reference/glm_image_ar.py, our reading of the published architecture, not the reference code)
/// exports with its KV cache, passes parity against TorchSharp, and its ONNX logits match PyTorch's for a prompt with
/// M-RoPE grid positions.
/// </summary>
[TestClass]
public sealed class GlmImageArTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private string WriteCheckpoint()
    {
        var dir = Path.Combine(_temp, "vision_language_encoder");
        var (code, stdout, stderr) = TestSupport.Run(TestSupport.Python, [Path.Combine(AppContext.BaseDirectory, "Reference", "glm_image_ar.py"), "--out", dir]);
        Assert.AreEqual(0, code, stdout + stderr);
        return dir;
    }

    [TestMethod]
    public void TheArStageExportsWithItsCacheAndMatchesPyTorchWithMropeGridPositions()
    {
        var checkpoint = WriteCheckpoint();
        var r = GlmImageArExporter.Export(checkpoint, Path.Combine(_temp, "out"));
        Assert.IsTrue(r.Model.Passed, string.Join("; ", r.Model.Parity.Select(p => $"{p.Case} {p.Output} {p.MaxAbsError:E2}")));
        Assert.AreEqual(1 + 2 * 13 + 2, r.Weights.Consumed.Count, "embedding, 13 tensors per layer (4 norms, q/k/v with bias, o, gate_up, down), final norm, head");
        Assert.AreEqual(2, r.ImageToImageTensors, "the vision tower and VQ tensors are counted, not loaded");
        Assert.AreEqual(0, r.SlicedAwayTensors);

        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "reference.json")))!;
        var ids = reference["ids"]!.AsArray().Select(row => row!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();
        var pos = reference["positions"]!.AsArray().SelectMany(a => a!.AsArray().SelectMany(row => row!.AsArray().Select(x => x!.GetValue<long>()))).ToArray();
        var expected = reference["logits"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
        int b = ids.Length, s = ids[0].Length;
        CollectionAssert.AreEqual(pos, GlmImageArExporter.GridPositions(b, 5, 3, 4).data<long>().ToArray(), "our grid positions equal the reference script's");

        using var parity = new Parity(r.Model.ModelPath);
        var feeds = GlmImageArExporter.Feeds(r.Config.LayersBuilt, r.Config, tensor(ids.SelectMany(x => x).ToArray(), [b, s]), ones(b, s, dtype: ScalarType.Int64),
            tensor(pos, [3, b, s]), null);
        var got = parity.Run(feeds)["logits"].data<float>().ToArray();
        Assert.AreEqual(expected.Length, got.Length);
        double worst = expected.Zip(got, (e, g) => Math.Abs(e - g)).Max();
        Assert.IsTrue(worst <= 1e-4, $"max |ONNX - PyTorch| = {worst:E2}");
        Assert.IsTrue(expected.Max() - expected.Min() > 1, "logits are not degenerate");

        // The M-RoPE sections matter: plain 1-D positions give different logits.
        var flat = GlmImageArExporter.Feeds(r.Config.LayersBuilt, r.Config, tensor(ids.SelectMany(x => x).ToArray(), [b, s]), ones(b, s, dtype: ScalarType.Int64),
            arange(s).view(1, 1, s).expand(3, b, s).contiguous(), null);
        var flatLogits = parity.Run(flat)["logits"].data<float>().ToArray();
        Assert.IsTrue(expected.Zip(flatLogits, (e, g) => Math.Abs(e - g)).Max() > 1e-2, "grid positions change the result");
    }

    [TestMethod]
    public void ALayerSliceKeepsTheFirstLayersAndCountsTheRest()
    {
        var checkpoint = WriteCheckpoint();
        var r = GlmImageArExporter.Export(checkpoint, Path.Combine(_temp, "out1"), layers: 1);
        Assert.IsTrue(r.Model.Passed);
        Assert.AreEqual(1, r.Config.LayersBuilt);
        Assert.AreEqual(13, r.SlicedAwayTensors, "layer 1's tensors");
        StringAssert.Contains(File.ReadAllText(r.Model.ReportPath), "1 of 2");
    }

    [TestMethod]
    public void AMissingTensorOrAnUnsupportedTextConfigFieldIsNamed()
    {
        var checkpoint = WriteCheckpoint();
        var path = Path.Combine(checkpoint, "model.safetensors");
        var tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(path);
        tensors.Remove("model.language_model.layers.1.post_mlp_layernorm.weight");
        File.Delete(path);
        TorchSharp.PyBridge.Safetensors.SaveStateDict(path, tensors);
        var e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageArExporter.Export(checkpoint, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "missing 1 tensor (model.language_model.layers.1.post_mlp_layernorm.weight)");

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")))!.AsObject();
        config["text_config"]!["sliding_window"] = 4096;
        File.WriteAllText(Path.Combine(checkpoint, "config.json"), config.ToJsonString());
        e = Assert.ThrowsExactly<CheckpointException>(() => GlmImageArExporter.Export(checkpoint, Path.Combine(_temp, "bad")));
        StringAssert.Contains(e.Message, "text_config field \"sliding_window\" is not supported");
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void AtGlmImagesFullWidthsAOneLayerSliceExportsWithTheCacheAndPassesParity()
    {
        // Random weights at the official widths (hidden 4096, 32/2 heads of 128, FFN 13696, M-RoPE [8, 12, 12],
        // vision vocabulary 16512); the text embedding is cut to the vision vocabulary to keep memory small (it is a
        // lookup: its size changes no arithmetic).
        var c = GlmImageTextConfig.Official(layers: 1) with { VocabSize = 16512 };
        var dir = Path.Combine(_temp, "vle-full");
        Directory.CreateDirectory(dir);
        manual_seed(3);
        using (var m = new GlmImageTextModel(c))
        {
            var stateDict = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            TorchSharp.PyBridge.Safetensors.SaveStateDict(Path.Combine(dir, "model.safetensors"), stateDict);
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), new JsonObject
        {
            ["model_type"] = "glm_image",
            ["text_config"] = new JsonObject { ["vocab_size"] = 16512, ["num_hidden_layers"] = 1 },
        }.ToJsonString());
        var r = GlmImageArExporter.Export(dir, Path.Combine(_temp, "out-full"));
        Assert.AreEqual(4096, r.Config.Hidden);
        Assert.AreEqual(64, r.Config.RotaryDim);
        Assert.IsNotNull(r.Model.ExternalDataPath, "weights above 1 GB go to external data");
        foreach (var row in r.Model.Parity) Assert.IsTrue(row.Passed, $"{row.Case} {row.Output}: {row.MaxAbsError:E2}");
    }
}
