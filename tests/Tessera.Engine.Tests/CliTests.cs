using System.Diagnostics;
using System.Text.Json;
using Tessera.Abstractions;
using Tessera.Cli;

namespace Tessera.Engine.Tests;

/// <summary>Runs the built `tessera` as a process, the way a user does.</summary>
[TestClass]
public sealed class CliTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private (int Code, string Out, string Err) Tessera(params string[] args) => TesseraWith([], args);

    /// <summary>Runs tessera, requires exit code 0 and parses its stdout as JSON.</summary>
    private JsonDocument Json(params string[] args)
    {
        var (code, stdout, stderr) = Tessera(args);
        Assert.AreEqual(0, code, stderr);
        return JsonDocument.Parse(stdout);
    }

    private (int Code, string Out, string Err) TesseraWith(Dictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["TESSERA_CACHE_DIR"] = Path.Combine(_temp, "cache");
        psi.Environment.Remove("TESSERA_PLUGIN_PATH");
        psi.Environment.Remove("TESSERA_MODEL");
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.IsTrue(p.WaitForExit(60_000), "tessera finished within a minute");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [TestMethod]
    public void DevicesJsonListsTheCpuPluginFromTheDefaultFolderAndCpu0Available()
    {
        using var doc = Json("devices", "--json");
        var cpu = doc.RootElement.GetProperty("devices").EnumerateArray().Single(d => d.GetProperty("id").GetString() == "cpu:0");
        Assert.IsTrue(cpu.GetProperty("available").GetBoolean());
        Assert.IsTrue(cpu.GetProperty("totalMemoryBytes").GetInt64() > 0);
        var plugin = doc.RootElement.GetProperty("plugins").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "cpu");
        Assert.AreEqual("loaded", plugin.GetProperty("state").GetString());
        StringAssert.Contains(plugin.GetProperty("location").GetString(), Path.Combine("plugins", "cpu"));
    }

    [TestMethod]
    public void DevicesListsCudaAndAscendAsUnavailableWithTheirPreciseReasons()
    {
        var (code, stdout, stderr) = Tessera("devices", "--json");
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var devices = doc.RootElement.GetProperty("devices").EnumerateArray().ToDictionary(d => d.GetProperty("id").GetString()!);
        foreach (var (id, library, runtime) in new[] { ("cuda:0", "libcuda.so.1", "has no CUDA execution provider"), ("ascend:0", "libascendcl.so", "built without the CANN execution provider") })
        {
            Assert.IsTrue(devices.ContainsKey(id), $"{id} is listed:\n{stdout}");
            bool driver = System.Runtime.InteropServices.NativeLibrary.TryLoad(library, out var handle);
            if (driver) System.Runtime.InteropServices.NativeLibrary.Free(handle);
            var available = devices[id].GetProperty("available").GetBoolean();
            var reason = devices[id].GetProperty("reason").GetString();
            if (!driver)
            {
                // No driver library on this machine: the device cannot be available, and the reason names the library.
                Assert.IsFalse(available, $"{id} is available without {library}");
                StringAssert.Contains(reason, library, $"{id}: {reason}");
                StringAssert.Contains(reason, runtime, $"{id}: {reason}");
            }
            else if (!available)
            {
                // The driver is here: what is missing is a device or the provider in onnxruntime, and the reason says which.
                Assert.IsTrue(reason!.Contains("device") || reason.Contains(runtime), $"{id}: {reason}");
            }
        }
    }

    [TestMethod]
    public void PluginVerifyPassesOnTheCpuPluginIncludingTheShippedModelsGraphs()
    {
        var cpu = Path.Combine(Path.GetDirectoryName(TestPaths.CliDll)!, "plugins", "cpu");
        var (code, stdout, stderr) = Tessera("plugin", "verify", cpu, "--json");
        Assert.AreEqual(0, code, stdout + stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.AreEqual("pass", doc.RootElement.GetProperty("result").GetString());
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("case").GetString()).ToList();
        foreach (var c in new[] { "contract.corrupt-model", "op.softmax", "op.attention", "model.ar", "model.decoder" }) CollectionAssert.Contains(cases, c);
    }

    [TestMethod]
    public void PluginVerifyFailsNamingTheCaseAPluginGetsWrong()
    {
        var (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("corrupt"), "--no-models");
        Assert.AreEqual(1, code, stdout);
        StringAssert.Contains(stdout, "FAIL: 1 case(s) failed (corrupt:0 op.softmax)");
        StringAssert.Contains(stdout, "probs: 1 of 800 elements outside tolerance");
    }

    [TestMethod]
    public void PluginVerifyRefusesAPluginForAnotherContractAndSaysWhyADeviceWasNotVerified()
    {
        var (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("future"));
        Assert.AreEqual(1, code, stdout);
        StringAssert.Contains(stdout, "was built for plugin contract 2.0, but this host implements contract 1.0");

        (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("echo"), "--no-models");
        Assert.AreEqual(0, code, stdout);
        StringAssert.Contains(stdout, "fixture:1  SKIP  unavailable: fixture: simulated missing driver");

        (code, stdout, _) = Tessera("plugin", "verify", TestPaths.Fixture("ascend"), "--no-models");
        if (!stdout.Contains("ascend:0 ("))   // no NPU here: nothing can be verified, and the exit code says so
        {
            Assert.AreEqual(2, code, stdout);
            StringAssert.Contains(stdout, "NOT VERIFIED");
        }
    }

    [TestMethod]
    public void DevicesShowsFailedPluginsWithTheirReasons()
    {
        var (code, stdout, stderr) = Tessera("devices", "--plugin-path", TestPaths.Fixture("throwing"), "--plugin-path", TestPaths.Fixture("echo"));
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "FAILED");
        StringAssert.Contains(stdout, "fixture constructor fails on purpose");
        StringAssert.Contains(stdout, "fixture:1 unavailable  fixture: simulated missing driver");
    }

    [TestMethod]
    public void RunOnATruncatedOrNonOnnxFilePrintsOneLineNamingTheFileAndFails()
    {
        var truncated = Path.Combine(_temp, "truncated.onnx");
        var bytes = TestGraphs.LinearRelu();
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var text = Path.Combine(_temp, "notes.onnx");
        File.WriteAllText(text, "these are my notes, not a model");
        var missing = Path.Combine(_temp, "missing.onnx");

        foreach (var file in new[] { truncated, text, missing })
        {
            var (code, _, stderr) = Tessera("run", file, "--device", "cpu:0");
            Assert.AreNotEqual(0, code, file);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.AreEqual(1, lines.Length, stderr);
            StringAssert.StartsWith(lines[0], "error: ");
            StringAssert.Contains(lines[0], file);
        }
    }

    [TestMethod]
    public void RunExecutesAGraphOnNpyInputsAndSavesTheOutputs()
    {
        var model = Path.Combine(_temp, "linear_relu.onnx");
        File.WriteAllBytes(model, TestGraphs.LinearRelu());
        var x = new float[] { 1, 2, 3, -4, 0.5f, 2 };
        var input = Path.Combine(_temp, "x.npy");
        TensorFiles.WriteNpy(input, HostTensor.Create(x, 2, 3));
        var outDir = Path.Combine(_temp, "out");

        var (code, stdout, stderr) = Tessera("run", model, "--device", "cpu:0", "--input", $"x={input}", "--save", outDir, "--iterations", "3");

        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "output   y: float[2, 2]");
        StringAssert.Contains(stdout, "median");
        var spec = new TensorSpec("y", TensorElementType.Float32, [Dimension.Fixed(2), Dimension.Fixed(2)]);
        var y = TensorFiles.Read(Path.Combine(outDir, "y.npy"), spec, [2, 2]);
        TestGraphs.AssertClose(TestGraphs.LinearReluExpected(x), y.AsSpan<float>().ToArray());
    }

    [TestMethod]
    public void RunOnAnUnknownDeviceNamesItAndListsTheKnownDevices()
    {
        var model = Path.Combine(_temp, "m.onnx");
        File.WriteAllBytes(model, TestGraphs.LinearRelu());
        var (code, _, stderr) = Tessera("run", model, "--device", "npu:7");
        Assert.AreEqual(2, code, "usage errors exit with 2");
        StringAssert.Contains(stderr, "Unknown device 'npu:7'");
        StringAssert.Contains(stderr, "cpu:0");
    }

    private const string MoonPrompt = "the word \"MOON\" in red on a yellow background";

    [TestMethod]
    public void GenerateOnTheShippedDefaultGivesTheSamePngForTheSameSeedAndNeverLoadsTorchSharp()
    {
        var a = Path.Combine(_temp, "a.png");
        var b = Path.Combine(_temp, "b.png");
        var (code, stdout, stderr) = TesseraWith(new() { ["TESSERA_DIAGNOSTICS"] = "assemblies" }, "generate", MoonPrompt, "-o", a, "--seed", "5", "--steps", "4");
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, $"wrote {a} (64x64, seed 5)");
        var loaded = stderr.Split('\n').Where(l => l.StartsWith("loaded ")).ToList();
        Assert.AreEqual(2, loaded.Count, stderr);
        Assert.IsFalse(loaded.Any(l => l.Contains("TorchSharp") || l.Contains("libtorch")), "the inference path loaded TorchSharp: " + string.Join("\n", loaded));
        StringAssert.Contains(loaded[0], "Microsoft.ML.OnnxRuntime");

        Assert.AreEqual(0, Tessera("generate", MoonPrompt, "-o", b, "--seed", "5", "--steps", "4").Code);
        CollectionAssert.AreEqual(File.ReadAllBytes(a), File.ReadAllBytes(b));
    }

    [TestMethod]
    public void GenerateRejectsBadInputWithOneLineNamingTheThing()
    {
        var notImage = Path.Combine(_temp, "photo.png");
        File.WriteAllText(notImage, "not a picture");
        var cases = new (string[] Args, string Expected)[]
        {
            (["generate", "   "], "the prompt is required"),
            (["generate", string.Join(" ", Enumerable.Repeat("red", 60))], "limit is 48"),
            (["generate", MoonPrompt, "--model", Path.Combine(_temp, "nowhere")], Path.Combine(_temp, "nowhere")),
            (["generate", MoonPrompt, "--image", notImage], notImage),
            (["generate", MoonPrompt, "--device", "tpu:0"], "Unknown device 'tpu:0'"),
        };
        foreach (var (args, expected) in cases)
        {
            var (code, _, stderr) = Tessera([.. args, "-o", Path.Combine(_temp, "x.png")]);
            Assert.AreNotEqual(0, code, string.Join(" ", args));
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error: ")).ToList();
            Assert.AreEqual(1, lines.Count, stderr);
            StringAssert.Contains(lines[0], expected);
        }
        Assert.IsFalse(File.Exists(Path.Combine(_temp, "x.png")), "nothing is written on error");
    }

    [TestMethod]
    public void HelpDescribesEveryCommand()
    {
        var (code, stdout, _) = Tessera("--help");
        Assert.AreEqual(0, code);
        foreach (var c in new[] { "generate", "devices", "run", "bench", "serve", "plugin", "train", "export", "import", "package", "eval", "data" }) StringAssert.Contains(stdout, "\n  " + c + " ");
        var (code2, stdout2, _) = Tessera("run", "--help");
        Assert.AreEqual(0, code2);
        StringAssert.Contains(stdout2, "--input");
        StringAssert.Contains(stdout2, "name=random");
    }

    [TestMethod]
    public void BenchOverheadJsonPrintsBothPathsAndTheRatio()
    {
        using var doc = Json("bench", "overhead", "--json", "--rounds", "1", "--runs-per-round", "20", "--hidden", "64", "--layers", "2");
        var r = doc.RootElement;
        double engine = r.GetProperty("engineMedianMs").GetDouble(), direct = r.GetProperty("directMedianMs").GetDouble();
        Assert.IsTrue(engine > 0 && direct > 0);
        Assert.AreEqual(engine / direct, r.GetProperty("ratio").GetDouble(), engine / direct * 0.002, "the ratio is engine / direct");
        Assert.IsTrue(r.TryGetProperty("fixedOverheadUsPerCall", out _));
    }

    [TestMethod]
    public void BenchServeJsonReportsEachRowAgainstNoBatchingTheCeilingAndAnAaFloorAtConcurrency1()
    {
        using var doc = Json("bench", "serve", "--json", "--requests", "8", "--concurrency", "1,4", "--max-batch", "4", "--steps", "1");
        var r = doc.RootElement;
        Assert.AreEqual(4, r.GetProperty("arBatchLimit").GetInt32());
        double ceiling = r.GetProperty("ceiling").GetProperty("imagesPerSecond").GetDouble();
        Assert.IsTrue(ceiling > 0);
        var rows = r.GetProperty("rows").EnumerateArray().ToList();
        CollectionAssert.AreEqual(new[] { 1, 4 }, rows.Select(x => x.GetProperty("concurrency").GetInt32()).ToArray());
        foreach (var row in rows)
        {
            var on = row.GetProperty("batching");
            var off = row.GetProperty("noBatching");
            double a = on.GetProperty("imagesPerSecond").GetDouble(), b = off.GetProperty("imagesPerSecond").GetDouble();
            Assert.AreEqual(a / b, row.GetProperty("throughputRatio").GetDouble(), 0.006, "throughput x is batching / no batching");
            Assert.AreEqual(a / ceiling, row.GetProperty("ofCeiling").GetDouble(), 0.006, "of ceiling is images/s / the ceiling");
            Assert.IsTrue(on.GetProperty("largestArBatch").GetInt32() <= 4, "the batching server keeps its limit");
            Assert.AreEqual(1, off.GetProperty("largestArBatch").GetInt32(), "the server without batching runs one request per AR step");
            Assert.AreEqual(0, on.GetProperty("arHostBytesPerStep").GetProperty("kvCache").GetDouble(), "the batched KV cache stays on the device");
        }
        Assert.IsTrue(rows[0].TryGetProperty("aaThroughputRatio", out _), "concurrency 1 carries the A/A floor");
        Assert.IsFalse(rows[1].TryGetProperty("aaThroughputRatio", out _));
    }

    [TestMethod]
    public void BenchInstrumentationJsonComparesProgressAndMetricsWithNoneAndReportsTheScrape()
    {
        var (code, stdout, stderr) = Tessera("bench", "instrumentation", "--json", "--rounds", "1", "--runs-per-round", "1", "--steps", "1");
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var r = doc.RootElement;
        foreach (var (with, without, ratio) in new[] { ("bareAgainMs", "bareMs", "noiseRatio"), ("spectreBarsMs", "bareMs", "progressRatio"), ("queueWithPrometheusMs", "queueMs", "metricsRatio") })
        {
            double a = r.GetProperty(with).GetDouble(), b = r.GetProperty(without).GetDouble();
            Assert.IsTrue(a > 0 && b > 0, $"{with}, {without}");
            Assert.AreEqual(a / b, r.GetProperty(ratio).GetDouble(), 0.002, $"{ratio} is {with} / {without}");
        }
        Assert.IsTrue(r.GetProperty("scrapeMs").GetDouble() > 0);
        Assert.IsTrue(r.GetProperty("scrapeBytes").GetInt32() > 1000, "the scrape carries the queue's series");
        Assert.AreEqual("", stdout.Split('\n').FirstOrDefault(l => l.Contains("\u001b", StringComparison.Ordinal)) ?? "", "the bars were drawn into the benchmark's writer, not stdout");
    }

    [TestMethod]
    public void ServeRefusesABadMaxBatchInOneLineNamingAuto()
    {
        foreach (var bad in new[] { "0", "257", "lots" })
        {
            var (code, _, stderr) = Tessera("serve", "--port", "0", "--max-batch", bad);
            Assert.AreNotEqual(0, code, bad);
            StringAssert.Contains(stderr, $"--max-batch '{bad}'", bad);
            StringAssert.Contains(stderr, "auto", bad);
            Assert.AreEqual(1, stderr.Trim().Split('\n').Length, $"one line: {stderr}");
        }
    }
}
