using System.Text.Json.Nodes;

namespace Tessera.Export.Tests;

/// <summary>`tessera import glm-image` on a test snapshot in the official layout, as a user runs it.</summary>
[TestClass]
public sealed class GlmImageImportTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestSupport.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private string Snapshot()
    {
        var dir = Path.Combine(_temp, "snapshot");
        var (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", "--write-test-snapshot", dir, "--seed", "3");
        Assert.AreEqual(0, code, stdout + stderr);
        foreach (var f in new[] { "model_index.json", "vision_language_encoder/config.json", "vision_language_encoder/model.safetensors", "transformer/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "text_encoder/model.safetensors", "scheduler/scheduler_config.json", "processor/tokenizer_config.json", "tokenizer/tokenizer_config.json" })
            Assert.IsTrue(File.Exists(Path.Combine(dir, f)), f);
        return dir;
    }

    [TestMethod]
    public void TheTestSnapshotImportsWithEveryStageWithinToleranceAndEveryTensorAccountedFor()
    {
        var snapshot = Snapshot();
        var package = Path.Combine(_temp, "package");
        var (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", snapshot, "--out", package);
        Assert.AreEqual(0, code, stdout + stderr);
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(package, "import.json")))!;
        Assert.IsTrue(report["passed"]!.GetValue<bool>());
        var stages = report["stages"]!.AsArray().ToDictionary(s => s!["stage"]!.GetValue<string>());
        CollectionAssert.AreEquivalent(new[] { "ar", "decoder", "vae", "glyph-encoder" }, stages.Keys.ToArray());
        foreach (var (name, s) in stages)
        {
            Assert.AreEqual(0, s!["tensors"]!["missing"]!.GetValue<int>(), name);
            Assert.AreEqual(0, s["tensors"]!["unexpected"]!.GetValue<int>(), name);
            Assert.IsTrue(s["worstAbsError"]!.GetValue<double>() <= 1e-4, $"{name}: {s["worstAbsError"]}");
            Assert.IsTrue(File.Exists(Path.Combine(package, s["file"]!.GetValue<string>())));
        }
        Assert.AreEqual(5, stages["ar"]!["tensors"]!["notUsed"]!["image-to-image (vision tower, VQ)"]!.GetValue<int>());
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(package, "manifest.json")))!;
        Assert.AreEqual("glm-image", manifest["kind"]!.GetValue<string>());
        Assert.AreEqual("all", manifest["layers"]!.GetValue<string>());
        Assert.IsTrue(File.Exists(Path.Combine(package, "scheduler_config.json")));
        Assert.IsTrue(File.Exists(Path.Combine(package, "generation_config.json")));
    }

    [TestMethod]
    public void ALayerSliceIsSaidInTheManifestAndThePlanSizesEachStageFromTheHeaders()
    {
        var snapshot = Snapshot();
        var (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", snapshot, "--plan");
        Assert.AreEqual(0, code, stdout + stderr);
        foreach (var stage in new[] { "ar", "decoder", "vae", "glyph-encoder" }) StringAssert.Contains(stdout, stage);
        StringAssert.Contains(stdout, "cpu:0");
        var sliced = Path.Combine(_temp, "sliced");
        (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", snapshot, "--out", sliced, "--layers", "1");
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(JsonNode.Parse(File.ReadAllText(Path.Combine(sliced, "manifest.json")))!["layers"]!.GetValue<string>(), "first 1 layers");
        StringAssert.Contains(stdout, "beyond the layer slice not used");
    }

    [TestMethod]
    public void NotASnapshotOrAMissingComponentIsOneLineNamingIt()
    {
        var snapshot = Snapshot();
        Directory.Delete(Path.Combine(snapshot, "vae"), recursive: true);
        foreach (var (dir, expected) in new[] { (snapshot, "folder vae/ is missing"), (Path.Combine(snapshot, "transformer"), "has no model_index.json"), (Path.Combine(_temp, "nothing"), "does not exist") })
        {
            var (code, stdout, stderr) = TestSupport.Tessera("import", "glm-image", dir, "--out", Path.Combine(_temp, "out"));
            Assert.AreNotEqual(0, code, stdout);
            StringAssert.Contains(stderr, expected);
            Assert.AreEqual(1, stderr.Trim().Split('\n').Length, stderr);
            Assert.IsFalse(stderr.Contains("   at "), stderr);
        }
        var (c2, _, e2) = TestSupport.Tessera("import", "glm-image", "--write-test-snapshot", snapshot);
        Assert.AreNotEqual(0, c2);
        StringAssert.Contains(e2, "is not empty");
    }
}
