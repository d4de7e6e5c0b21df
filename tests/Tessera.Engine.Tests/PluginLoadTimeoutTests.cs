using System.Diagnostics;
using Tessera.Engine.Plugins;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class PluginLoadTimeoutTests
{
    private string _temp = "";

    [TestInitialize]
    public void Init() => _temp = TestPaths.NewTempDir();

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_temp, recursive: true);

    [TestMethod]
    public void APluginThatHangsWhileLoadingIsSkippedAfterTheTimeoutNamingItAndTheOthersLoad()
    {
        var options = TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("hanging"), TestPaths.Fixture("cpu"));
        options.PluginLoadTimeout = TimeSpan.FromSeconds(1);
        var watch = Stopwatch.StartNew();
        using var engine = new TesseraEngine(options);
        watch.Stop();

        var hanging = engine.Plugins.Single(p => p.Location.Contains("Fixture.HangingPlugin"));
        Assert.AreEqual(PluginState.Failed, hanging.State);
        StringAssert.Contains(hanging.Reason, hanging.Location);
        StringAssert.Contains(hanging.Reason, "did not finish loading within 1 s");
        Assert.AreEqual(PluginState.Loaded, engine.Plugins.Single(p => p.Name == "cpu").State, "the other plugin still loads");
        Assert.IsTrue(engine.Devices.Get("cpu:0").Info.IsAvailable);
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(20), $"the host waited {watch.Elapsed.TotalSeconds:F1} s, not forever");
    }

    [TestMethod]
    public void ThePluginLoadTimeoutIsReadFromTheConfigurationFileAndCheckedForRange()
    {
        var good = Path.Combine(_temp, "good.json");
        File.WriteAllText(good, "{\"pluginLoadTimeout\": 2.5}");
        Assert.AreEqual(TimeSpan.FromSeconds(2.5), EngineConfigFile.Load(good).PluginLoadTimeout);
        var bad = Path.Combine(_temp, "bad.json");
        File.WriteAllText(bad, "{\"pluginLoadTimeout\": -1}");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => EngineConfigFile.Load(bad)).Message, "'pluginLoadTimeout' is -1");
    }
}
