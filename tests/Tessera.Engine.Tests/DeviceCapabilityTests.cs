using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Abstractions;
using Tessera.Onnx;

namespace Tessera.Engine.Tests;

/// <summary>
/// Capabilities are read by the host: a device is given the int8 / fp16 / bf16 variant of a model when it declares
/// that flag, and verify fails a device that declares flags the host does not know or a cache it does not have.
/// Also the small reporting items of the vendor kit (a failed plugin's row names the plugin, fallback said once).
/// </summary>
[TestClass]
public sealed class DeviceCapabilityTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    /// <summary>x[2,8] + c → y: which variant ran shows in the output.</summary>
    private static ModelSource AddConstant(float c, string name)
    {
        var g = new OnnxGraphBuilder(name, opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        g.Output(g.Node("Add", x, g.Initializer("c", Enumerable.Repeat(c, 16).ToArray(), 2, 8)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        return ModelSource.FromBytes(g.ToBytes(), name);
    }

    private static float FirstOutput(CompiledOnDevice compiled)
    {
        using var o = compiled.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(new float[16], 2, 8) });
        return o["y"].ToHost().AsSpan<float>()[0];
    }

    private TesseraEngine Engine(string? npuCapabilities)
    {
        var options = TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("cpu"), TestPaths.Fixture("subset-npu"));
        if (npuCapabilities is not null) options.PluginSettings["subset-npu"] = new() { ["capabilities"] = npuCapabilities };
        return new TesseraEngine(options);
    }

    [TestMethod]
    public void TheHostCompilesTheVariantOfTheCapabilityTheDeviceDeclaresInt8FirstElseTheDefault()
    {
        var variants = new ModelVariants(AddConstant(0, "model.onnx"), new Dictionary<string, ModelSource>
        {
            [DeviceCapabilities.Int8] = AddConstant(1, "model.int8.onnx"),
            [DeviceCapabilities.Float16] = AddConstant(2, "model.fp16.onnx"),
        });
        var strict = new CompileOptions { Fallback = FallbackPolicy.Strict, UseCompiledModelCache = false };

        using (var engine = Engine("fp16"))
        {
            using var cpu = engine.Compile(variants, "cpu:0", strict); // the CPU declares int8
            Assert.AreEqual(1f, FirstOutput(cpu), "cpu:0 was given the int8 variant");
            Assert.AreEqual("model.int8.onnx (the int8 variant: cpu:0 declares int8)", cpu.Variant);
            using var npu = engine.Compile(variants, "npu:0", strict);
            Assert.AreEqual(2f, FirstOutput(npu), "npu:0, declaring fp16 only, was given the fp16 variant");
            StringAssert.Contains(npu.Variant, "npu:0 declares fp16");
        }
        using (var engine = Engine("int8,fp16"))
        {
            using var npu = engine.Compile(variants, "npu:0", strict);
            Assert.AreEqual(1f, FirstOutput(npu), "int8 is preferred over fp16");
        }
        using (var engine = Engine(""))
        {
            using var npu = engine.Compile(variants, "npu:0", strict);
            Assert.AreEqual(0f, FirstOutput(npu), "a device declaring neither gets the default model");
            Assert.IsNull(npu.Variant);
        }
        var bad = Assert.ThrowsExactly<ArgumentException>(() => new ModelVariants(AddConstant(0, "m"), new Dictionary<string, ModelSource> { ["iobinding"] = AddConstant(1, "m2") }));
        StringAssert.Contains(bad.Message, "'iobinding'");
        StringAssert.Contains(bad.Message, "int8, fp16, bf16");
    }

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

    private string Config(string json)
    {
        var path = Path.Combine(_temp, $"config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static string CaseOf(string verifyJson, string name)
    {
        using var doc = JsonDocument.Parse(verifyJson);
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("case").GetString() == name);
        return c.GetProperty("status").GetString() + ": " + c.GetProperty("detail").GetString();
    }

    [TestMethod]
    public void VerifyFailsADeviceThatDeclaresAnUnknownCapabilityOrACacheItDoesNotHave()
    {
        var (code, stdout, stderr) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--json", "--fallback", "allow",
            "--config", Config("""{ "plugins": { "subset-npu": { "capabilities": "iobinding,int8" } } }"""));
        Assert.AreEqual(1, code, stdout + stderr);
        var capabilities = CaseOf(stdout, "contract.capabilities");
        StringAssert.StartsWith(capabilities, "fail: declares capability 'iobinding' that the host does not know");
        StringAssert.Contains(capabilities, "compiled-model-cache");

        (code, stdout, stderr) = Tessera("plugin", "verify", TestPaths.Fixture("subset-npu"), "--no-models", "--json", "--fallback", "allow",
            "--config", Config("""{ "plugins": { "subset-npu": { "capabilities": "compiled-model-cache" } } }"""));
        Assert.AreEqual(1, code, stdout + stderr);
        StringAssert.StartsWith(CaseOf(stdout, "contract.capabilities"), "fail: declares compiled-model-cache, but compiling the same graph again did not come from its cache");

        // The CPU plugin's claims (int8, device-resident-tensors, compiled-model-cache) hold.
        var cpu = Path.Combine(Path.GetDirectoryName(TestPaths.CliDll)!, "plugins", "cpu");
        (code, stdout, stderr) = Tessera("plugin", "verify", cpu, "--no-models", "--json");
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.StartsWith(CaseOf(stdout, "contract.capabilities"), "pass");
    }

    [TestMethod]
    public void AFailedPluginsRowInDevicesShowsThePluginsNameNotItsDll()
    {
        var config = Config("""{ "plugins": { "subset-npu": { "mode": "bogus" } } }""");
        var (code, stdout, stderr) = Tessera("devices", "--plugin-path", TestPaths.Fixture("subset-npu"), "--config", config);
        Assert.AreEqual(0, code, stdout + stderr);
        var row = stdout.Split('\n').Single(l => l.Contains("FAILED"));
        StringAssert.StartsWith(row.TrimStart(), "subset-npu ", row);
        StringAssert.Contains(row, "setting 'mode' is 'bogus'");
        Assert.IsFalse(row.TrimStart().StartsWith("Fixture.SubsetNpuPlugin", StringComparison.Ordinal), row);

        (code, stdout, _) = Tessera("devices", "--plugin-path", TestPaths.Fixture("subset-npu"), "--config", config, "--json");
        Assert.AreEqual(0, code, stdout);
        var plugin = JsonNode.Parse(stdout)!["plugins"]!.AsArray().Single(p => p!["state"]!.GetValue<string>() == "failed")!;
        Assert.AreEqual("subset-npu", plugin["name"]!.GetValue<string>());
    }

    [TestMethod]
    public void GenerateOnAnUnavailableDeviceUnderAllowSaysItUsesTheCpuOnceAndGivesTheCpuThePackagesInt8Variant()
    {
        // A copy of the shipped package with an int8 variant of the decoder (the same graph, under its own name).
        var package = Directory.CreateDirectory(Path.Combine(_temp, "package")).FullName;
        var shipped = Path.Combine(TestPaths.RepoRoot, "models", "default");
        foreach (var f in Directory.GetFiles(shipped)) File.Copy(f, Path.Combine(package, Path.GetFileName(f)));
        File.Copy(Path.Combine(shipped, "decoder.onnx"), Path.Combine(package, "decoder.int8.onnx"));
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(package, "manifest.json")))!;
        manifest["files"]!["decoder.int8"] = "decoder.int8.onnx";
        File.WriteAllText(Path.Combine(package, "manifest.json"), manifest.ToJsonString());

        var (code, _, err) = Tessera("generate", "the word \"MOON\" in red on a yellow background", "--model", package, "-o", Path.Combine(_temp, "out.png"),
            "--steps", "2", "--device", "fixture:1", "--fallback", "allow", "--plugin-path", TestPaths.Fixture("echo"));
        Assert.AreEqual(0, code, err);
        Assert.AreEqual(1, err.Split("using cpu:0 instead").Length - 1, "the fallback is said once for both stages:\n" + err);
        StringAssert.Contains(err, "variant: decoder: decoder.int8.onnx (the int8 variant: cpu:0 declares int8)");
        Assert.IsFalse(err.Contains("variant: ar:"), "the AR has no variant, so none is reported:\n" + err);
    }

    [TestMethod]
    public void RunPlacementOnAPluginThatIsNotOnnxRuntimeSaysWhereEachNodeRunsInTheHostsTerms()
    {
        var model = Path.Combine(_temp, "softmax.onnx");
        var g = new OnnxGraphBuilder("softmax", opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        g.Output(g.Node("Softmax", [g.Node("Mul", x, g.Scalar(4f))], [OnnxAttribute.Int("axis", -1)]), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 8));
        File.WriteAllBytes(model, g.ToBytes());
        var (code, stdout, stderr) = Tessera("run", model, "--device", "npu:0", "--fallback", "allow", "--placement", "--plugin-path", TestPaths.Fixture("subset-npu"));
        Assert.AreEqual(0, code, stdout + stderr);
        StringAssert.Contains(stdout, "fallback partition");
        StringAssert.Matches(stdout, new System.Text.RegularExpressions.Regex(@"cpu \(fallback\)\s+Softmax\s+x1"));
        StringAssert.Matches(stdout, new System.Text.RegularExpressions.Regex(@"npu:0\s+Mul\s+x1"));
        Assert.IsFalse(stdout.Contains("ONNX Runtime"), "a plugin that is not on ONNX Runtime is not described in its terms:\n" + stdout);
    }
}
