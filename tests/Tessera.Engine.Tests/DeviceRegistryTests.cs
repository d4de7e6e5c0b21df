using Tessera.Abstractions;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class DeviceRegistryTests
{
    private static string _temp = "";
    private static TesseraEngine _engine = null!;

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        _temp = TestPaths.NewTempDir();
        _engine = new TesseraEngine(TestPaths.Options(Path.Combine(_temp, "cache"), TestPaths.Fixture("cpu"), TestPaths.Fixture("echo")));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        _engine.Dispose();
        Directory.Delete(_temp, recursive: true);
    }

    [TestMethod]
    public void DevicesAreNamedKindColonIndexAndABareKindMeansIndexZero()
    {
        Assert.AreEqual(new DeviceId("cpu", 0), _engine.Devices.Get("cpu").Info.Id);
        Assert.AreEqual(new DeviceId("fixture", 1), _engine.Devices.Get("FIXTURE:1").Info.Id);
        Assert.IsFalse(DeviceId.TryParse("cpu:x", out _));
        Assert.IsFalse(DeviceId.TryParse("cpu:0:1", out _));
        Assert.IsFalse(DeviceId.TryParse("", out _));
    }

    [TestMethod]
    public void AutoPicksTheAvailableDeviceWithTheHighestScore()
    {
        // fixture:0 scores 20, cpu:0 scores 10, fixture:1 scores 20 but is unavailable.
        Assert.AreEqual("fixture:0", _engine.Devices.Get("auto").Info.Id.ToString());
    }

    [TestMethod]
    public void UnknownDeviceErrorNamesItAndListsTheKnownOnes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => _engine.Devices.Get("cuda:3"));
        StringAssert.Contains(e.Message, "Unknown device 'cuda:3'");
        StringAssert.Contains(e.Message, "cpu:0");
        StringAssert.Contains(e.Message, "fixture:1 (unavailable)");
    }

    [TestMethod]
    public void StrictPolicyRefusesAnUnavailableDeviceWithItsReason()
    {
        var e = Assert.ThrowsExactly<DeviceUnavailableException>(() => _engine.Devices.Place("fixture:1", FallbackPolicy.Strict));
        StringAssert.Contains(e.Message, "fixture:1");
        StringAssert.Contains(e.Message, "simulated missing driver");
        StringAssert.Contains(e.Message, "allow");
    }

    [TestMethod]
    public void AllowPolicyFallsBackToTheCpuAndSaysWhatFellBack()
    {
        var options = new CompileOptions { Fallback = FallbackPolicy.Allow };
        using var compiled = _engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), "fixture:1", options);

        Assert.AreEqual("cpu:0", compiled.Model.Device.ToString());
        Assert.IsTrue(compiled.Placement.FellBack);
        Assert.AreEqual(new DeviceId("fixture", 1), compiled.Placement.Requested);
        StringAssert.Contains(compiled.FallbackNotes.Single(), "fixture:1 is not available");
        StringAssert.Contains(compiled.FallbackNotes.Single(), "using cpu:0");
    }

    [TestMethod]
    public void CompilingOnAnUnavailableDeviceDirectlyThrowsDeviceUnavailable()
    {
        var device = _engine.Devices.Get("fixture:1").Device;
        Assert.ThrowsExactly<DeviceUnavailableException>(() => device.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), new CompileOptions()));
        var report = device.CheckSupport(ModelSource.FromBytes(TestGraphs.LinearRelu()), new CompileOptions());
        Assert.IsFalse(report.CanRun);
        StringAssert.Contains(report.Message, "simulated missing driver");
    }

    [TestMethod]
    public void CheckSupportListsEveryNodeOfTheGraph()
    {
        var report = _engine.Devices.Get("cpu:0").Device.CheckSupport(ModelSource.FromBytes(TestGraphs.LinearRelu()), new CompileOptions());
        Assert.IsTrue(report.CanRun, report.Message);
        CollectionAssert.AreEqual(new[] { "MatMul", "Add", "Relu", "Identity" }, report.Nodes.Select(n => n.OpType).ToArray());
        Assert.IsFalse(report.FallbackNodes.Any());
    }
}
