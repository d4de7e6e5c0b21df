using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

[assembly: TesseraPlugin(typeof(Tessera.Plugins.Cuda.CudaPlugin))]

namespace Tessera.Plugins.Cuda;

/// <summary>
/// NVIDIA GPUs through ONNX Runtime's CUDA execution provider. Settings (engine configuration section <c>cuda</c>):
/// the CUDA EP options in <see cref="CudaSettings.Options"/>, plus <c>driver_library</c> (path of libcuda.so.1) and
/// <c>cuda_library_path</c> (folders holding the CUDA and cuDNN libraries, when the loader does not find them).
/// Needs a native onnxruntime built with CUDA: <c>tessera plugin install cuda</c> puts NuGet's GPU build into the
/// plugin folder (see <see cref="CudaNative"/> and docs/devices.md).
/// </summary>
public sealed class CudaPlugin : ITesseraPlugin
{
    public string Name => "cuda";
    public string Vendor => "Tessera";
    public Version Version => typeof(CudaPlugin).Assembly.GetName().Version ?? new Version(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        var settings = CudaSettings.Parse(context.Settings);
        services.AddSingleton<IDeviceProvider>(new CudaDeviceProvider(settings, new OptimizedGraphCache(context.CacheDirectory), context.PluginDirectory));
    }
}

/// <summary>Validated CUDA settings.</summary>
public sealed record CudaSettings(IReadOnlyDictionary<string, string> ProviderOptions, string? DriverLibrary, IReadOnlyList<string> LibraryPath)
{
    public const string Provider = "CUDAExecutionProvider";
    public static readonly string[] PluginKeys = ["driver_library", "cuda_library_path"];

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
        var path = settings.TryGetValue("cuda_library_path", out var p)
            ? p.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Path.GetFullPath).ToArray()
            : [];
        return new CudaSettings(options, driver, path);
    }
}

/// <summary>
/// Lists GPUs (from the driver), or one unavailable <c>cuda:0</c> with the precise reasons there are none. Every reason
/// is given at once, in the order an operator fixes them: the driver, the CUDA libraries the CUDA execution provider
/// loads (the first missing one named, with what provides it), the onnxruntime build.
/// </summary>
public sealed class CudaDeviceProvider(CudaSettings settings, OptimizedGraphCache cache, string? pluginDirectory = null) : IDeviceProvider
{
    public string Kind => "cuda";

    public IReadOnlyList<IDevice> EnumerateDevices()
    {
        var probe = CudaDriver.Probe(settings.DriverLibrary);
        var loaded = CudaNative.LoadedLibraryPath();
        var providers = OrtEnv.Instance().GetAvailableProviders();
        var runtime = pluginDirectory is null
            ? (providers.Contains(CudaSettings.Provider) ? null : $"the native onnxruntime {OrtNativeApi.NativeVersion} ({loaded}) was built without CUDA (its providers: {string.Join(", ", providers)}). Run `tessera plugin install cuda`, or start tessera with TESSERA_ONNXRUNTIME pointing at an onnxruntime built with CUDA.")
            : CudaNative.RuntimeReason(pluginDirectory, loaded, OrtNativeApi.NativeVersion, providers);
        var needed = CudaLibraries.NeededBy(ProviderLibrary(loaded));
        var libraries = CudaLibraries.Reason(CudaLibraries.Locate(needed, settings.LibraryPath));
        var cudaMajor = CudaLibraries.CudaMajor(needed);
        var driverTooOld = probe.DriverVersion is { } dv && cudaMajor is { } cm && dv / 1000 < cm
            ? $"the NVIDIA driver supports CUDA {CudaDriver.FormatVersion(dv)}, but this onnxruntime's CUDA execution provider is built for CUDA {cm}: install a newer driver (see nvidia-smi)."
            : null;

        var properties = new Dictionary<string, string> { ["execution_provider"] = CudaSettings.Provider, ["onnxruntime_version"] = OrtNativeApi.NativeVersion };
        if (loaded is not null) properties["onnxruntime"] = loaded;
        if (cudaMajor is { } major) properties["cuda_runtime_required"] = major.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (probe.DriverVersion is { } v) properties["driver"] = CudaDriver.FormatVersion(v);
        // One sentence per reason; the first keeps its wording, the others start with a capital.
        string? Join(params string?[] parts) => parts.Any(p => p is not null)
            ? string.Join(" ", parts.OfType<string>().Select((p, i) => Sentence(i == 0 || p.Length == 0 ? p : char.ToUpperInvariant(p[0]) + p[1..])))
            : null;
        if (probe.Devices.Count == 0)
            return [new CudaDevice(Info(0, "NVIDIA GPU", Join(probe.Reason, libraries, runtime), null, properties), settings, cache)];
        var reason = Join(driverTooOld, libraries, runtime);
        return probe.Devices.Select(g => (IDevice)new CudaDevice(Info(g.Index, g.Name, reason, g.TotalBytes,
            new Dictionary<string, string>(properties) { ["compute_capability"] = $"{g.Major}.{g.Minor}", ["uuid"] = g.Uuid }), settings, cache)).ToList();
    }

    private static string Sentence(string? s) => s is null ? "" : s.EndsWith('.') ? s : s + ".";

    /// <summary>The CUDA provider library ONNX Runtime would load: beside the loaded libonnxruntime.so, else the plugin's installed native.</summary>
    private string? ProviderLibrary(string? loaded)
    {
        if (loaded is not null && Path.GetDirectoryName(loaded) is { } dir && File.Exists(Path.Combine(dir, CudaNative.ProviderLibrary)))
            return Path.Combine(dir, CudaNative.ProviderLibrary);
        if (pluginDirectory is not null && Path.Combine(pluginDirectory, CudaNative.NativeFolder, CudaNative.ProviderLibrary) is var installed && File.Exists(installed))
            return installed;
        return null;
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

    /// <summary>
    /// <c>OrtCUDAProviderOptions</c>. In an onnxruntime without CUDA ("not enabled in this build"), or when its provider
    /// library cannot load (ONNX Runtime: "Failed to load library libonnxruntime_providers_cuda.so with error:
    /// libcublasLt.so.13: cannot open shared object file"), this is a typed <see cref="ProviderNotEnabledException"/>
    /// carrying ONNX Runtime's message.
    /// </summary>
    public static OrtCUDAProviderOptions CreateOptions()
    {
        try { return new OrtCUDAProviderOptions(); }
        catch (OnnxRuntimeException e) when (e.Message.Contains("not enabled in this build", StringComparison.OrdinalIgnoreCase)
                                              || (e.Message.Contains("Failed to load library", StringComparison.Ordinal) && e.Message.Contains("libonnxruntime_providers_cuda", StringComparison.Ordinal)))
        {
            throw new ProviderNotEnabledException("CreateCUDAProviderOptions", CudaSettings.Provider, OrtStatusCode.Fail, e.Message.Trim());
        }
    }
}
