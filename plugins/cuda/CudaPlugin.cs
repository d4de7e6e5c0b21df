using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

[assembly: TesseraPlugin(typeof(Tessera.Plugins.Cuda.CudaPlugin))]

namespace Tessera.Plugins.Cuda;

/// <summary>
/// NVIDIA GPUs through ONNX Runtime's CUDA execution provider. Settings (engine configuration section <c>cuda</c>):
/// the CUDA EP options in <see cref="CudaSettings.Options"/>, plus <c>driver_library</c> (path of libcuda.so.1).
/// Needs a native onnxruntime built with CUDA (the NuGet CPU package has none; see docs/devices.md).
/// </summary>
public sealed class CudaPlugin : ITesseraPlugin
{
    public string Name => "cuda";
    public string Vendor => "Tessera";
    public Version Version => typeof(CudaPlugin).Assembly.GetName().Version ?? new Version(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        var settings = CudaSettings.Parse(context.Settings);
        services.AddSingleton<IDeviceProvider>(new CudaDeviceProvider(settings, new OptimizedGraphCache(context.CacheDirectory)));
    }
}

/// <summary>Validated CUDA settings.</summary>
public sealed record CudaSettings(IReadOnlyDictionary<string, string> ProviderOptions, string? DriverLibrary)
{
    public const string Provider = "CUDAExecutionProvider";
    public static readonly string[] PluginKeys = ["driver_library"];

    /// <summary>The CUDA EP's options (ONNX Runtime's names, passed through <c>OrtCUDAProviderOptions</c>).</summary>
    public static readonly ProviderOptionSet Options = new("cuda",
    [
        new("device_id", ProviderOptionKind.Integer, "GPU to use (set per device; cuda:N uses N)", Min: 0, Max: 255),
        new("gpu_mem_limit", ProviderOptionKind.Bytes, "memory limit of the device arena"),
        new("arena_extend_strategy", ProviderOptionKind.Choice, "how the arena grows", ["kNextPowerOfTwo", "kSameAsRequested"]),
        new("cudnn_conv_algo_search", ProviderOptionKind.Choice, "how cuDNN picks convolution algorithms", ["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]),
        new("do_copy_in_default_stream", ProviderOptionKind.Flag, "copy on the default stream"),
        new("cudnn_conv_use_max_workspace", ProviderOptionKind.Flag, "let cuDNN use the largest workspace"),
        new("cudnn_conv1d_pad_to_nc1d", ProviderOptionKind.Flag, "pad 1-D convolutions to NC1D"),
        new("enable_cuda_graph", ProviderOptionKind.Flag, "capture runs as CUDA graphs (needs fixed shapes and bound inputs)"),
        new("tunable_op_enable", ProviderOptionKind.Flag, "enable TunableOp"),
        new("tunable_op_tuning_enable", ProviderOptionKind.Flag, "let TunableOp tune online"),
        new("use_tf32", ProviderOptionKind.Flag, "allow TF32 math on Ampere and newer"),
        new("prefer_nhwc", ProviderOptionKind.Flag, "prefer NHWC kernels"),
        new("enable_skip_layer_norm_strict_mode", ProviderOptionKind.Flag, "strict SkipLayerNorm precision"),
    ]);

    public static CudaSettings Parse(IReadOnlyDictionary<string, string> settings)
    {
        var options = Options.Validate(settings, PluginKeys);
        settings.TryGetValue("driver_library", out var driver);
        return new CudaSettings(options, driver);
    }
}

/// <summary>Lists GPUs (from the driver), or one unavailable <c>cuda:0</c> with the precise reason there are none.</summary>
public sealed class CudaDeviceProvider(CudaSettings settings, OptimizedGraphCache cache) : IDeviceProvider
{
    public string Kind => "cuda";

    public IReadOnlyList<IDevice> EnumerateDevices()
    {
        var probe = CudaDriver.Probe(settings.DriverLibrary);
        string? runtime = OrtNativeApi.HasProvider(CudaSettings.Provider)
            ? null
            : $"the native onnxruntime {OrtNativeApi.NativeVersion} was built without CUDA (its providers: {string.Join(", ", OrtEnv.Instance().GetAvailableProviders())}). Install an onnxruntime built with CUDA (the Microsoft.ML.OnnxRuntime.Gpu.Linux package) and start tessera with TESSERA_ONNXRUNTIME pointing at it.";
        var properties = new Dictionary<string, string> { ["execution_provider"] = CudaSettings.Provider };
        if (probe.DriverVersion is { } v) properties["driver"] = CudaDriver.FormatVersion(v);
        if (probe.Devices.Count == 0)
            return [new CudaDevice(Info(0, "NVIDIA GPU", probe.Reason + (runtime is null ? "" : $" Also: {runtime}"), null, properties), settings, cache)];
        return probe.Devices.Select(g => (IDevice)new CudaDevice(Info(g.Index, g.Name, runtime, g.TotalBytes,
            new Dictionary<string, string>(properties) { ["compute_capability"] = $"{g.Major}.{g.Minor}", ["uuid"] = g.Uuid }), settings, cache)).ToList();
    }

    private static DeviceInfo Info(int index, string name, string? reason, long? total, Dictionary<string, string> properties) =>
        new(new DeviceId("cuda", index), name, reason is null, reason, total, null,
            new HashSet<string> { DeviceCapabilities.Float16, DeviceCapabilities.Int8, DeviceCapabilities.DeviceResidentTensors, DeviceCapabilities.CompiledModelCache },
            PreferenceScore: 100, properties);
}

/// <summary>One GPU: sessions get the CUDA EP with the plugin's options and <c>device_id</c> = the GPU's index.</summary>
public sealed class CudaDevice(DeviceInfo info, CudaSettings settings, OptimizedGraphCache cache) : OrtDevice(info, cache)
{
    protected override string ProviderName => CudaSettings.Provider;

    protected override IReadOnlyCollection<string> AllowedDeviceSettings => CudaSettings.Options.Options.Select(o => o.Name).ToArray();

    protected override void AppendExecutionProvider(SessionOptions options, CompileOptions compile)
    {
        var values = CudaSettings.Options.ForSession(settings.ProviderOptions, Info.Id.Index, compile.DeviceSettings);
        using var cuda = CreateOptions();
        cuda.UpdateOptions(values);
        options.AppendExecutionProvider_CUDA(cuda);
    }

    /// <summary><c>OrtCUDAProviderOptions</c>; in an onnxruntime without CUDA this is ONNX Runtime's "not enabled" error, typed.</summary>
    public static OrtCUDAProviderOptions CreateOptions()
    {
        try { return new OrtCUDAProviderOptions(); }
        catch (OnnxRuntimeException e) when (e.Message.Contains("not enabled in this build", StringComparison.OrdinalIgnoreCase))
        {
            throw new ProviderNotEnabledException("CreateCUDAProviderOptions", CudaSettings.Provider, OrtStatusCode.Fail, e.Message.Trim());
        }
    }
}
