extern alias ascend;
extern alias cuda;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using ascend::Tessera.Plugins.Ascend;
using cuda::Tessera.Plugins.Cuda;
// The shared ONNX Runtime backend is compiled into each plugin; these tests use the Ascend plugin's copy, except
// for the CUDA plugin's own exception type.
using ascend::Tessera.Plugins.OnnxRuntime;
using CudaNotEnabled = cuda::Tessera.Plugins.OnnxRuntime.ProviderNotEnabledException;

namespace Tessera.Engine.Tests;

/// <summary>
/// The CUDA and Ascend plugins on a machine without their hardware: the native interop reaches the real onnxruntime,
/// options are validated, and devices say precisely why they are unavailable.
/// </summary>
[TestClass]
public sealed class AcceleratorPluginTests
{
    [TestMethod]
    public void TheCannFunctionTableReachesTheNativeOnnxRuntimeAndReportsNotEnabledAsATypedException()
    {
        if (OrtNativeApi.HasProvider(CannProviderOptions.Provider)) Assert.Inconclusive("this onnxruntime has the CANN EP");
        // Each call lands on the CANN entry of the table: a wrong slot would crash or answer with another message.
        var create = Assert.ThrowsExactly<ProviderNotEnabledException>(() => CannProviderOptions.Create());
        Assert.AreEqual("CreateCANNProviderOptions", create.Function);
        Assert.AreEqual(CannProviderOptions.Provider, create.Provider);
        StringAssert.Contains(create.NativeMessage, "CANN execution provider is not enabled in this build");

        var update = Assert.ThrowsExactly<ProviderNotEnabledException>(() => CannProviderOptions.Update(IntPtr.Zero, new Dictionary<string, string> { ["device_id"] = "0" }));
        StringAssert.Contains(update.NativeMessage, "CANN");
        using var session = new SessionOptions();
        // Appending goes through the provider bridge, which looks for the CANN provider library first.
        var append = Assert.ThrowsExactly<ProviderNotEnabledException>(() => CannProviderOptions.AppendTo(session, IntPtr.Zero));
        Assert.AreEqual("SessionOptionsAppendExecutionProvider_CANN", append.Function);
        Assert.IsTrue(append.NativeMessage.Contains("CANN") || append.NativeMessage.Contains("libonnxruntime_providers_cann.so"), append.NativeMessage);
        Assert.IsInstanceOfType<TesseraException>(append);
    }

    [TestMethod]
    public void TheFunctionTableIsTheLoadedOnnxRuntimeAndItsVersionIsTheManagedOnes()
    {
        var managed = OrtNativeApi.ManagedVersion;
        Assert.AreEqual(OrtEnv.Instance().GetVersionString(), OrtNativeApi.NativeVersion);
        StringAssert.StartsWith(OrtNativeApi.NativeVersion, $"{managed.Major}.{managed.Minor}");
    }

    [TestMethod]
    public void CudaProviderOptionsInACpuOnlyOnnxRuntimeAreATypedNotEnabledError()
    {
        if (OrtNativeApi.HasProvider(CudaSettings.Provider)) Assert.Inconclusive("this onnxruntime has the CUDA EP");
        var e = Assert.ThrowsExactly<CudaNotEnabled>(() => CudaDevice.CreateOptions());
        StringAssert.Contains(e.NativeMessage, "CUDA");
    }

    [TestMethod]
    public void BadOptionKeysAndValuesNameTheOptionAndWhatIsAllowed()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => AscendSettings.Parse(new Dictionary<string, string> { ["precision_mode"] = "fp8" }));
        StringAssert.Contains(e.Message, "'precision_mode' is 'fp8'");
        StringAssert.Contains(e.Message, "force_fp32, force_fp16, allow_fp32_to_fp16, must_keep_origin_dtype, allow_mix_precision");

        e = Assert.ThrowsExactly<ArgumentException>(() => AscendSettings.Parse(new Dictionary<string, string> { ["npu-mem-limit"] = "1GiB" }));
        StringAssert.Contains(e.Message, "Unknown ascend setting 'npu-mem-limit'");
        StringAssert.Contains(e.Message, "Did you mean 'npu_mem_limit'?");
        StringAssert.Contains(e.Message, "enable_cann_graph");

        e = Assert.ThrowsExactly<ArgumentException>(() => AscendSettings.Parse(new Dictionary<string, string> { ["optypelist_for_implmode"] = "Pooling,Conv" }));
        StringAssert.Contains(e.Message, "lists 'Conv'");

        e = Assert.ThrowsExactly<ArgumentException>(() => CudaSettings.Parse(new Dictionary<string, string> { ["arena_extend_strategy"] = "grow" }));
        StringAssert.Contains(e.Message, "cuda setting 'arena_extend_strategy' is 'grow'; allowed: kNextPowerOfTwo, kSameAsRequested");
        e = Assert.ThrowsExactly<ArgumentException>(() => CudaSettings.Parse(new Dictionary<string, string> { ["enable_cuda_graph"] = "yes" }));
        StringAssert.Contains(e.Message, "allowed: 0, 1");
        e = Assert.ThrowsExactly<ArgumentException>(() => CudaSettings.Parse(new Dictionary<string, string> { ["gpu_mem_limit"] = "-5" }));
        StringAssert.Contains(e.Message, "'gpu_mem_limit' is '-5'");
        e = Assert.ThrowsExactly<ArgumentException>(() => CudaSettings.Parse(new Dictionary<string, string> { ["device_id"] = "300" }));
        StringAssert.Contains(e.Message, "from 0 to 255");
        e = Assert.ThrowsExactly<ArgumentException>(() => AscendSettings.Parse(new Dictionary<string, string> { ["onnxruntime_path"] = "/nonexistent/libonnxruntime.so" }));
        StringAssert.Contains(e.Message, "--use_cann");

        // Good values are normalised for ONNX Runtime.
        var ok = AscendSettings.Parse(new Dictionary<string, string> { ["npu_mem_limit"] = "2GiB", ["enable_cann_graph"] = "true", ["precision_mode"] = "FORCE_FP16" });
        Assert.AreEqual("2147483648", ok.ProviderOptions["npu_mem_limit"]);
        Assert.AreEqual("1", ok.ProviderOptions["enable_cann_graph"]);
        Assert.AreEqual("force_fp16", ok.ProviderOptions["precision_mode"]);
        Assert.AreEqual("HEURISTIC", CudaSettings.Parse(new Dictionary<string, string> { ["cudnn_conv_algo_search"] = "heuristic" }).ProviderOptions["cudnn_conv_algo_search"]);
    }

    [TestMethod]
    public void SessionOptionsTakeThePluginsThenTheDeviceIndexThenValidatedDeviceSettings()
    {
        var plugin = AscendSettings.Parse(new Dictionary<string, string> { ["precision_mode"] = "force_fp16", ["device_id"] = "7" }).ProviderOptions;
        var session = AscendSettings.Options.ForSession(plugin, 2, new Dictionary<string, string> { ["enable_cann_graph"] = "off" });
        Assert.AreEqual("2", session["device_id"], "each device uses its own index");
        Assert.AreEqual("force_fp16", session["precision_mode"]);
        Assert.AreEqual("0", session["enable_cann_graph"]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => AscendSettings.Options.ForSession(plugin, 0, new Dictionary<string, string> { ["precision_mode"] = "fp4" }));
        StringAssert.Contains(e.Message, "'precision_mode' is 'fp4'");
    }

    [TestMethod]
    public void WithoutHardwareEachPluginOffersOneUnavailableDeviceWithAPreciseReason()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var options = TestPaths.Options(Path.Combine(dir, "cache"), TestPaths.Fixture("cuda"), TestPaths.Fixture("ascend"), TestPaths.Fixture("cpu"));
            options.PluginSettings["cuda"] = new() { ["driver_library"] = "/nonexistent/libcuda.so.1" };
            options.PluginSettings["ascend"] = new() { ["acl_library"] = "/nonexistent/libascendcl.so" };
            using var engine = new TesseraEngine(options);
            var cuda = engine.Devices.Get("cuda:0");
            Assert.IsFalse(cuda.Info.IsAvailable);
            StringAssert.Contains(cuda.Info.UnavailableReason, "no NVIDIA driver: libcuda.so.1 was not found (tried /nonexistent/libcuda.so.1)");
            var ascend = engine.Devices.Get("ascend:0");
            StringAssert.Contains(ascend.Info.UnavailableReason, "no CANN runtime: libascendcl.so was not found (tried /nonexistent/libascendcl.so)");

            // Compiling on them is refused with the reason; auto placement picks the CPU.
            var graph = ModelSource.FromBytes(TestGraphs.LinearRelu(), "mlp");
            var e = Assert.ThrowsExactly<DeviceUnavailableException>(() => engine.Compile(graph, "cuda:0"));
            StringAssert.Contains(e.Message, "libcuda");
            using var compiled = engine.Compile(graph, "auto");
            Assert.AreEqual("cpu", compiled.Model.Device.Kind);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void TheCannOnnxRuntimePathIsCheckedForBeingOnnxRuntimeItsVersionAndBeingTheLoadedOne()
    {
        // The onnxruntime this process loaded: an ONNX Runtime of the managed package's version, so the checks pass
        // through to the provider itself, which this build does not have.
        var loaded = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime.so");
        Assert.IsTrue(File.Exists(loaded), loaded);
        _ = OrtNativeApi.NativeVersion;
        var reason = AscendDeviceProvider.OnnxRuntimeReason(loaded);
        StringAssert.Contains(reason, "built without the CANN execution provider");

        // A native library that is not ONNX Runtime.
        var zlib = new[] { "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1" }.FirstOrDefault(File.Exists);
        if (zlib is null) Assert.Inconclusive("no libz.so.1 to stand in for a wrong library");
        StringAssert.Contains(AscendDeviceProvider.OnnxRuntimeReason(zlib), "has no OrtGetApiBase export; it is not an ONNX Runtime library");
    }

    [TestMethod]
    public void AMissingNativeOnnxRuntimeOverrideIsAnErrorThatSaysWhatToSet()
    {
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => NativeOnnxRuntime.Use("/nonexistent/libonnxruntime.so"));
        StringAssert.Contains(e.Message, "TESSERA_ONNXRUNTIME");
        Assert.IsNull(NativeOnnxRuntime.Chosen);
    }
}

/// <summary>
/// Node placement as ONNX Runtime reports it, on a device that claims an execution provider it never adds: every node
/// then runs on the CPU EP, which is exactly what an accelerator's unsupported nodes look like.
/// </summary>
[TestClass]
public sealed class NodePlacementTests
{
    private sealed class ClaimingDevice() : OrtDevice(new DeviceInfo(new DeviceId("claim", 0), "claims an EP", true, null, null, null,
        new HashSet<string>(), 1, new Dictionary<string, string>()), null)
    {
        protected override string ProviderName => "FakeAcceleratorExecutionProvider";
        protected override void AppendExecutionProvider(SessionOptions options, CompileOptions compile) { }
    }

    [TestMethod]
    public void NodesThatOnnxRuntimeRanOnTheCpuAreReportedAsFallbackAndStrictRefusesThem()
    {
        var device = new ClaimingDevice();
        var graph = ModelSource.FromBytes(TestGraphs.LinearRelu(), "linear-relu");

        var strict = device.CheckSupport(graph, new CompileOptions { Fallback = FallbackPolicy.Strict });
        Assert.IsFalse(strict.CanRun, strict.Message);
        CollectionAssert.AreEqual(new[] { "MatMul", "Add", "Relu", "Identity" }, strict.FallbackNodes.Select(n => n.OpType).ToArray());
        StringAssert.Contains(strict.FallbackNodes.First().Reason, "runs on CPUExecutionProvider");
        StringAssert.Contains(strict.Message, "0 of 4 executed nodes run on claim:0; 4 fall back to the CPU");

        var allow = device.CheckSupport(graph, new CompileOptions { Fallback = FallbackPolicy.Allow });
        Assert.IsTrue(allow.CanRun);
        using var compiled = device.Compile(graph, new CompileOptions { Fallback = FallbackPolicy.Allow, UseCompiledModelCache = false });
        Assert.AreEqual(4, compiled.Report.FallbackNodes.Count);

        var e = Assert.ThrowsExactly<FallbackNotAllowedException>(() => device.Compile(graph, new CompileOptions { Fallback = FallbackPolicy.Strict, UseCompiledModelCache = false }));
        Assert.AreEqual(4, e.FallbackNodes.Count);
        StringAssert.Contains(e.Message, "4 node(s) would fall back to the CPU (MatMul");
    }
}
