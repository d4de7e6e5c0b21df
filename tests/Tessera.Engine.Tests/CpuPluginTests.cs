using Tessera.Abstractions;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class CpuPluginTests : CpuEngineTest
{
    private static Dictionary<string, ITensorValue> Feed(params (string Name, ITensorValue Value)[] items) =>
        items.ToDictionary(i => i.Name, i => i.Value);

    [TestMethod]
    public void GraphCompiledTwiceWithTheSameOptionsComesFromTheOptimizedGraphCacheTheSecondTime()
    {
        var model = ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear_relu");
        var x = HostTensor.Create(new float[] { 1, -2, 3 }, 1, 3);

        using var first = Engine.Compile(model, "cpu:0");
        Assert.IsFalse(first.Model.Report.FromCache);
        Assert.IsNotNull(first.Model.Report.CachePath);
        Assert.IsTrue(File.Exists(first.Model.Report.CachePath));
        StringAssert.StartsWith(first.Model.Report.CachePath, Path.Combine(Temp, "cache"));

        using var second = Engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu(), "same bytes, new source"), "cpu:0");
        Assert.IsTrue(second.Model.Report.FromCache);
        Assert.AreEqual(first.Model.Report.CachePath, second.Model.Report.CachePath);

        using var a = first.Model.Run(Feed(("x", x)));
        using var b = second.Model.Run(Feed(("x", x)));
        CollectionAssert.AreEqual(a["y"].ToHost().AsSpan<float>().ToArray(), b["y"].ToHost().AsSpan<float>().ToArray());
    }

    [TestMethod]
    public void DifferentOptionsOrDifferentModelsGetDifferentCacheEntries()
    {
        var model = ModelSource.FromBytes(TestGraphs.LinearRelu());
        using var a = Engine.Compile(model, "cpu:0");
        using var b = Engine.Compile(model, "cpu:0", new CompileOptions { Optimization = OptimizationLevel.Basic });
        using var c = Engine.Compile(ModelSource.FromBytes(TestGraphs.Accumulator()), "cpu:0");
        Assert.IsFalse(b.Model.Report.FromCache);
        Assert.IsFalse(c.Model.Report.FromCache);
        Assert.AreEqual(3, new[] { a, b, c }.Select(m => m.Model.Report.CachePath).Distinct().Count());
    }

    [TestMethod]
    public void CorruptCacheEntryIsRebuiltWithANote()
    {
        var model = ModelSource.FromBytes(TestGraphs.LinearRelu());
        string path;
        using (var first = Engine.Compile(model, "cpu:0")) path = first.Model.Report.CachePath!;
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..20]);

        using var again = Engine.Compile(model, "cpu:0");
        Assert.IsFalse(again.Model.Report.FromCache);
        StringAssert.Contains(again.Model.Report.Notes.Single(), "could not be loaded and was rebuilt");
        using var third = Engine.Compile(model, "cpu:0");
        Assert.IsTrue(third.Model.Report.FromCache);
    }

    [TestMethod]
    public void DeviceTensorOutputsFeedTheNextRunAsInputsAndAreReleasedOnDispose()
    {
        using var compiled = Engine.Compile(ModelSource.FromBytes(TestGraphs.Accumulator()), "cpu:0");
        var step = HostTensor.Create(new float[] { 1, 2, 3, 4 }, 4);
        IDeviceTensor state = Engine.Devices.Get("cpu:0").Device.CopyToDevice(HostTensor.Create(new float[4], 4));
        for (int i = 0; i < 5; i++)
        {
            using var outputs = compiled.Model.Run(Feed(("state", state), ("step", step)));
            state.Dispose();
            state = outputs.Take("state_out");
        }
        CollectionAssert.AreEqual(new float[] { 5, 10, 15, 20 }, state.ToHost().AsSpan<float>().ToArray());
        state.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => state.ToHost());
    }

    [TestMethod]
    public void APartOfADeviceTensorCopiesToTheHostAloneAndTheContractsDefaultDoesTheSame()
    {
        var values = Enumerable.Range(0, 12).Select(i => (float)i * 1.5f).ToArray();
        using IDeviceTensor onDevice = Engine.Devices.Get("cpu:0").Device.CopyToDevice(HostTensor.Create(values, 3, 4));
        IDeviceTensor viaDefault = new HostOnlyTensor(HostTensor.Create(values, 3, 4));
        foreach (var tensor in new[] { onDevice, viaDefault })
        {
            var lastRow = new float[4];
            tensor.CopyTo<float>(8, lastRow);
            CollectionAssert.AreEqual(values[8..12], lastRow, tensor.GetType().Name);
            var middle = new float[3];
            tensor.CopyTo<float>(5, middle);
            CollectionAssert.AreEqual(values[5..8], middle, tensor.GetType().Name);
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tensor.CopyTo<float>(10, new float[4]), "past the end");
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tensor.CopyTo<float>(-1, new float[1]), "before the start");
        }
        Assert.ThrowsExactly<InvalidCastException>(() => onDevice.CopyTo<long>(0, new long[1]), "the element type is checked");
    }

    /// <summary>A device tensor written against the contract without the partial copy: it gets the interface's default.</summary>
    private sealed class HostOnlyTensor(HostTensor host) : IDeviceTensor
    {
        public TensorElementType ElementType => host.ElementType;
        public long[] Shape => host.Shape;
        public DeviceId Device => new("test", 0);
        public HostTensor ToHost() => HostTensor.Create(host.AsSpan<float>().ToArray(), host.Shape);
        public void CopyTo<T>(Span<T> destination) where T : unmanaged => ToHost().AsSpan<T>().CopyTo(destination);
        public void Dispose() { }
    }

    [TestMethod]
    public void CompiledModelReportsItsTypedSignatureWithNamedDynamicDimensions()
    {
        using var compiled = Engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), "cpu:0");
        Assert.AreEqual("x: float[batch, 3]", compiled.Model.Inputs.Single().ToString());
        Assert.AreEqual("y: float[batch, 2]", compiled.Model.Outputs.Single().ToString());
    }

    [TestMethod]
    public void RunRejectsMissingUnknownMistypedAndMisshapedInputsNamingThem()
    {
        using var compiled = Engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear_relu"), "cpu:0");
        var m = compiled.Model;
        StringAssert.Contains(Assert.ThrowsExactly<ModelRunException>(() => m.Run(Feed())).Message, "Input 'x' of 'linear_relu' is missing");
        StringAssert.Contains(Assert.ThrowsExactly<ModelRunException>(() => m.Run(Feed(("x", HostTensor.Create(new float[3], 1, 3)), ("z", HostTensor.Create(new float[1], 1))))).Message, "no input named 'z'");
        StringAssert.Contains(Assert.ThrowsExactly<ModelRunException>(() => m.Run(Feed(("x", HostTensor.Create(new long[3], 1, 3))))).Message, "is int64 but the model expects float");
        StringAssert.Contains(Assert.ThrowsExactly<ModelRunException>(() => m.Run(Feed(("x", HostTensor.Create(new float[4], 1, 4))))).Message, "has shape [1, 4] but the model expects [batch, 3]");
        StringAssert.Contains(Assert.ThrowsExactly<ModelRunException>(() => m.Run(Feed(("x", HostTensor.Create(new float[3], 1, 3))), ["nope"])).Message, "no output named 'nope'");
        using var ok = m.Run(Feed(("x", HostTensor.Create(new float[3], 1, 3))));
        Assert.AreEqual(2, ok["y"].Shape[1]);
    }

    [TestMethod]
    public void CorruptOrTruncatedModelFailsWithAMessageNamingTheFile()
    {
        var truncated = Path.Combine(Temp, "truncated.onnx");
        var bytes = TestGraphs.LinearRelu();
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsExactly<ModelLoadException>(() => Engine.Compile(ModelSource.FromFile(truncated), "cpu:0"));
        StringAssert.Contains(e.Message, truncated);
        StringAssert.Contains(e.Message, "not a valid ONNX file");

        var missing = Path.Combine(Temp, "missing.onnx");
        var e2 = Assert.ThrowsExactly<ModelLoadException>(() => Engine.Compile(ModelSource.FromFile(missing), "cpu:0"));
        StringAssert.Contains(e2.Message, missing);
    }

    [TestMethod]
    public void UnknownDeviceSettingIsRejectedNamingTheAllowedOnes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), "cpu:0",
            new CompileOptions { DeviceSettings = new Dictionary<string, string> { ["arenaa"] = "on" } }));
        StringAssert.Contains(e.Message, "'arenaa'", "names the setting it was given");
        StringAssert.Contains(e.Message, "Allowed settings: arena.", "and the ones the CPU device takes");
    }

    [TestMethod]
    public void ConcurrentRunsOnOneCompiledModelGiveCorrectResults()
    {
        using var compiled = Engine.Compile(ModelSource.FromBytes(TestGraphs.LinearRelu()), "cpu:0");
        Parallel.For(0, 64, i =>
        {
            var x = new float[] { i, -i / 2f, 1 };
            using var o = compiled.Model.Run(Feed(("x", HostTensor.Create(x, 1, 3))));
            TestGraphs.AssertClose(TestGraphs.LinearReluExpected(x), o["y"].ToHost().AsSpan<float>().ToArray());
        });
    }
}
