using Tessera.Abstractions;
using Tessera.Engine.Plugins;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class PluginLoadingTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    private TesseraEngine Engine(params string[] dirs) => new(TestPaths.Options(Path.Combine(_temp, "cache"), dirs));

    [TestMethod]
    public void PluginLoadsFromAFolderAndItsDeviceRunsAGraphFromTheGraphBuilder()
    {
        using var engine = Engine(TestPaths.Fixture("cpu"));

        var cpu = engine.Plugins.Single();
        Assert.AreEqual(PluginState.Loaded, cpu.State, cpu.Reason);
        Assert.AreEqual("cpu", cpu.Name);
        Assert.AreEqual(TesseraContract.Version, cpu.ContractVersion);

        var x = new float[] { 1, 2, 3, -4, 0.5f, 2 };
        using var compiled = engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear_relu"), "cpu:0");
        using var outputs = compiled.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(x, 2, 3) });
        var y = outputs["y"].ToHost();

        CollectionAssert.AreEqual(new long[] { 2, 2 }, y.Shape);
        var expected = TestGraphs.LinearReluExpected(x);
        TestGraphs.AssertClose(expected, y.AsSpan<float>().ToArray());
        Assert.IsTrue(expected.Any(v => v == 0) && expected.Any(v => v > 0), "the input exercises both sides of the relu");
    }

    [TestMethod]
    public void PluginBuiltForAnotherContractMajorIsRefusedNamingThePathAndBothVersions()
    {
        using var engine = Engine(TestPaths.Fixture("future"), TestPaths.Fixture("cpu"));

        var future = engine.Plugins.Single(p => p.Location.Contains("Fixture.FutureContractPlugin"));
        Assert.AreEqual(PluginState.Failed, future.State);
        StringAssert.Contains(future.Reason, future.Location);
        StringAssert.Contains(future.Reason, "contract 2.0");
        StringAssert.Contains(future.Reason, $"contract {TesseraContract.Major}.{TesseraContract.Minor}");
        Assert.AreEqual(new Version(2, 0), future.ContractVersion);
        Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable, "the host keeps running with the other plugin");
    }

    [TestMethod]
    public void CorruptAssemblyIsListedAsFailedAndTheHostKeepsRunning()
    {
        var corrupt = Path.Combine(_temp, "plugins", "corrupt");
        Directory.CreateDirectory(corrupt);
        File.WriteAllBytes(Path.Combine(corrupt, "Corrupt.dll"), "MZ this is not really a portable executable"u8.ToArray());
        var truncated = Path.Combine(_temp, "plugins", "truncated");
        Directory.CreateDirectory(truncated);
        var real = File.ReadAllBytes(Path.Combine(TestPaths.Fixture("cpu"), "Tessera.Plugins.Cpu.dll"));
        File.WriteAllBytes(Path.Combine(truncated, "Tessera.Plugins.Cpu.dll"), real[..(real.Length / 3)]);

        using var engine = Engine(Path.Combine(_temp, "plugins"), TestPaths.Fixture("cpu"));

        foreach (var name in new[] { "Corrupt.dll", "Tessera.Plugins.Cpu.dll" })
        {
            var failed = engine.Plugins.Single(p => p.State == PluginState.Failed && p.Location.EndsWith(name) && p.Location.StartsWith(_temp));
            StringAssert.Contains(failed.Reason, "not a valid .NET assembly");
            StringAssert.Contains(failed.Reason, failed.Location);
        }
        Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable);
    }

    [TestMethod]
    public void PluginWhoseConstructorThrowsIsListedWithTheExceptionAndTheHostKeepsRunning()
    {
        using var engine = Engine(TestPaths.Fixture("throwing"), TestPaths.Fixture("cpu"));

        var throwing = engine.Plugins.Single(p => p.Location.Contains("Fixture.ThrowingPlugin"));
        Assert.AreEqual(PluginState.Failed, throwing.State);
        StringAssert.Contains(throwing.Reason, "constructor");
        StringAssert.Contains(throwing.Reason, "fixture constructor fails on purpose");
        Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable);
    }

    [TestMethod]
    public void PluginMissingItsNativeLibraryIsListedWithTheLibraryNameAndTheHostKeepsRunning()
    {
        using var engine = Engine(TestPaths.Fixture("missing-native"), TestPaths.Fixture("cpu"));

        var missing = engine.Plugins.Single(p => p.Location.Contains("Fixture.MissingNativePlugin"));
        Assert.AreEqual(PluginState.Failed, missing.State);
        StringAssert.Contains(missing.Reason, "DllNotFoundException");
        StringAssert.Contains(missing.Reason, "libtessera_fixture_missing_runtime");
        StringAssert.Contains(missing.Reason, "native library");
        Assert.AreEqual(1, engine.LoadedPlugins.Count);
    }

    [TestMethod]
    public void EmptyPluginFoldersLeaveTheHostRunningWithAReason()
    {
        var root = Path.Combine(_temp, "plugins");
        Directory.CreateDirectory(Path.Combine(root, "empty-plugin"));
        var emptyRoot = Path.Combine(_temp, "nothing-here");
        Directory.CreateDirectory(emptyRoot);

        using var engine = Engine(root, emptyRoot, TestPaths.Fixture("cpu"));

        var empty = engine.Plugins.Single(p => p.Location.EndsWith("empty-plugin"));
        Assert.AreEqual(PluginState.Failed, empty.State);
        StringAssert.Contains(empty.Reason, "no plugin assembly");
        Assert.IsTrue(engine.PluginNotes.Any(n => n.Contains(emptyRoot) && n.Contains("holds no plugins")), string.Join("; ", engine.PluginNotes));
        Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable);
    }

    [TestMethod]
    public void MissingConfiguredPluginFolderIsNotedNotFatal()
    {
        using var engine = Engine(Path.Combine(_temp, "does-not-exist"), TestPaths.Fixture("cpu"));
        Assert.IsTrue(engine.PluginNotes.Any(n => n.Contains("does-not-exist") && n.Contains("does not exist")));
        Assert.AreEqual(1, engine.LoadedPlugins.Count);
    }

    [TestMethod]
    public void TwoPluginsLoadSideBySideAndBothDevicesComputeTheSameResult()
    {
        using var engine = Engine(TestPaths.Fixture("cpu"), TestPaths.Fixture("echo"));

        CollectionAssert.AreEquivalent(new[] { "cpu", "fixture" }, engine.LoadedPlugins.Select(p => p.Plugin.Name).ToArray());
        var x = new float[] { 0.3f, -1, 2 };
        var model = ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear_relu");
        float[] RunOn(string device)
        {
            using var c = engine.Compile(model, device);
            using var o = c.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(x, 1, 3) });
            Assert.AreEqual(device, o["y"].Device.ToString());
            return o["y"].ToHost().AsSpan<float>().ToArray();
        }
        CollectionAssert.AreEqual(RunOn("cpu:0"), RunOn("fixture:0"));
        TestGraphs.AssertClose(TestGraphs.LinearReluExpected(x), RunOn("cpu:0"));
    }

    [TestMethod]
    public void OneNativeOnnxRuntimeIsLoadedWhateverThePluginsLoad()
    {
        using var engine = Engine(TestPaths.Fixture("cpu"), TestPaths.Fixture("echo"));
        foreach (var device in new[] { "cpu:0", "fixture:0" })
        {
            using var c = engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), device);
            using var _ = c.Model.Run(new Dictionary<string, ITensorValue> { ["x"] = HostTensor.Create(new float[3], 1, 3) });
        }

        var mapped = File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
            .Where(p => Path.GetFileName(p).StartsWith("libonnxruntime.so", StringComparison.Ordinal))
            .Distinct()
            .ToList();
        Assert.AreEqual(1, mapped.Count, string.Join(", ", mapped));
        Assert.IsFalse(Directory.EnumerateFiles(TestPaths.Fixture("cpu"), "*onnxruntime*", SearchOption.AllDirectories).Any(),
            "the CPU plugin folder carries no copy of ONNX Runtime; the host provides it");
    }

    [TestMethod]
    public void PluginSettingsReachThePluginAndBadOnesFailItWithTheSettingNamed()
    {
        var good = TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("cpu"));
        good.PluginSettings["cpu"] = new() { ["devices"] = "2" };
        using (var engine = new TesseraEngine(good))
        {
            CollectionAssert.AreEqual(new[] { "cpu:0", "cpu:1" }, engine.Devices.Devices.Select(d => d.Info.Id.ToString()).ToArray());
            Assert.AreEqual("1", engine.Devices.Get("cpu:1").Info.Properties["threads"]);
        }

        var bad = TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("cpu"));
        bad.PluginSettings["cpu"] = new() { ["devcies"] = "2" };
        using (var engine = new TesseraEngine(bad))
        {
            var cpu = engine.Plugins.Single();
            Assert.AreEqual(PluginState.Failed, cpu.State);
            StringAssert.Contains(cpu.Reason, "Unknown cpu plugin setting 'devcies'");
            StringAssert.Contains(cpu.Reason, "devices, threads");
        }
    }
}
