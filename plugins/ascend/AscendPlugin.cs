using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

[assembly: TesseraPlugin(typeof(Tessera.Plugins.Ascend.AscendPlugin))]

namespace Tessera.Plugins.Ascend;

/// <summary>
/// Ascend NPUs through ONNX Runtime's CANN execution provider. Settings (engine configuration section <c>ascend</c>):
/// the CANN options in <see cref="AscendSettings.Options"/>, plus <c>acl_library</c> (path of libascendcl.so) and
/// <c>onnxruntime_path</c> (a CANN-enabled native onnxruntime; the host must load it, see docs/devices.md).
/// </summary>
public sealed class AscendPlugin : ITesseraPlugin
{
    public string Name => "ascend";
    public string Vendor => "Tessera";
    public Version Version => typeof(AscendPlugin).Assembly.GetName().Version ?? new Version(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        var settings = AscendSettings.Parse(context.Settings);
        services.AddSingleton<IDeviceProvider>(new AscendDeviceProvider(settings, new OptimizedGraphCache(context.CacheDirectory)));
    }
}

/// <summary>Validated Ascend settings: CANN provider options and the plugin's own paths.</summary>
public sealed record AscendSettings(IReadOnlyDictionary<string, string> ProviderOptions, string? AclLibrary, string? OnnxRuntimePath)
{
    public static readonly string[] PluginKeys = ["acl_library", "onnxruntime_path"];

    /// <summary>The CANN EP's options (ONNX Runtime's names), as documented for the CANN execution provider.</summary>
    public static readonly ProviderOptionSet Options = new("ascend",
    [
        new("device_id", ProviderOptionKind.Integer, "NPU to use (set per device; ascend:N uses N)", Min: 0, Max: 255),
        new("npu_mem_limit", ProviderOptionKind.Bytes, "memory limit of the device arena"),
        new("arena_extend_strategy", ProviderOptionKind.Choice, "how the arena grows", ["kNextPowerOfTwo", "kSameAsRequested"]),
        new("enable_cann_graph", ProviderOptionKind.Flag, "run whole graphs as CANN graphs (1) or op by op (0)"),
        new("dump_graphs", ProviderOptionKind.Flag, "dump the subgraphs CANN compiles"),
        new("dump_om_model", ProviderOptionKind.Flag, "dump the compiled .om models"),
        new("precision_mode", ProviderOptionKind.Choice, "operator precision", ["force_fp32", "force_fp16", "allow_fp32_to_fp16", "must_keep_origin_dtype", "allow_mix_precision"]),
        new("op_select_impl_mode", ProviderOptionKind.Choice, "kernel choice", ["high_performance", "high_precision"]),
        new("optypelist_for_implmode", ProviderOptionKind.List, "operator types that op_select_impl_mode applies to", ["Pooling", "SoftmaxV2", "LRN", "ROIAlign"]),
    ]);

    public static AscendSettings Parse(IReadOnlyDictionary<string, string> settings)
    {
        var options = Options.Validate(settings, PluginKeys);
        settings.TryGetValue("acl_library", out var acl);
        settings.TryGetValue("onnxruntime_path", out var ort);
        if (ort is not null && !File.Exists(ort))
            throw new ArgumentException($"ascend setting 'onnxruntime_path' is '{ort}', which does not exist. Point it at a libonnxruntime.so built with --use_cann.");
        return new AscendSettings(options, acl, ort);
    }
}

/// <summary>Lists NPUs, or one unavailable <c>ascend:0</c> with the precise reason there are none.</summary>
public sealed class AscendDeviceProvider(AscendSettings settings, OptimizedGraphCache cache) : IDeviceProvider
{
    public string Kind => "ascend";

    public IReadOnlyList<IDevice> EnumerateDevices()
    {
        var runtime = OnnxRuntimeReason(settings.OnnxRuntimePath);
        var (npus, reason) = AscendCl.Probe(settings.AclLibrary);
        var properties = new Dictionary<string, string>
        {
            ["execution_provider"] = CannProviderOptions.Provider,
            ["onnxruntime"] = $"{OrtNativeApi.NativeVersion}{(runtime is null ? " (with CANN)" : " (without CANN)")}",
        };
        if (npus.Count == 0)
            return [new AscendDevice(Info(0, "Ascend NPU", reason + (runtime is null ? "" : $" Also: {runtime}"), null, null, properties), settings, cache)];
        return npus.Select(n => (IDevice)new AscendDevice(Info(n.Index, n.SocName, runtime, n.TotalBytes, n.FreeBytes, properties), settings, cache)).ToList();
    }

    private static DeviceInfo Info(int index, string name, string? reason, long? total, long? free, Dictionary<string, string> properties) =>
        new(new DeviceId("ascend", index), name, reason is null, reason, total, free,
            new HashSet<string> { DeviceCapabilities.Float16, DeviceCapabilities.DeviceResidentTensors, DeviceCapabilities.CompiledModelCache },
            PreferenceScore: 50, properties);

    /// <summary>Null when the loaded onnxruntime can run the CANN EP; otherwise what is wrong and what to do.</summary>
    public static string? OnnxRuntimeReason(string? configuredPath)
    {
        var managed = OrtNativeApi.ManagedVersion;
        if (configuredPath is not null)
        {
            if (!NativeLibrary.TryLoad(configuredPath, out var lib))
                return $"onnxruntime_path '{configuredPath}' could not be loaded as a native library.";
            string version;
            try { version = OrtNativeApi.ReadApiBase(lib, configuredPath).Version; }
            catch (InvalidOperationException e) { return e.Message; }
            if (!Version.TryParse(version, out var v) || v < new Version(managed.Major, managed.Minor, Math.Max(0, managed.Build)))
                return $"onnxruntime_path '{configuredPath}' is ONNX Runtime {version}, older than the managed package {managed}; build onnxruntime {managed} or newer with --use_cann.";
            if (lib != OrtNativeApi.Library)
                return $"onnxruntime_path '{configuredPath}' is not the onnxruntime this process loaded; start tessera with TESSERA_ONNXRUNTIME={configuredPath} so the host loads it first.";
        }
        else if (Version.TryParse(OrtNativeApi.NativeVersion, out var loaded) && loaded < new Version(managed.Major, managed.Minor))
            return $"the loaded native onnxruntime is {loaded}, older than the managed package {managed}.";
        try
        {
            using var probe = CannProviderOptions.Create();
            return null;
        }
        catch (ProviderNotEnabledException)
        {
            return $"the native onnxruntime {OrtNativeApi.NativeVersion} was built without the CANN execution provider (ONNX Runtime: \"CANN execution provider is not enabled in this build\"). Build onnxruntime with --use_cann and set TESSERA_ONNXRUNTIME (and plugins.ascend.onnxruntime_path) to it.";
        }
        catch (OrtNativeException e)
        {
            return $"the CANN execution provider could not be created: {e.NativeMessage}";
        }
    }
}

/// <summary>One NPU: sessions get the CANN EP with the plugin's options, <c>device_id</c> = the NPU's index.</summary>
public sealed class AscendDevice(DeviceInfo info, AscendSettings settings, OptimizedGraphCache cache) : OrtDevice(info, cache)
{
    protected override string ProviderName => CannProviderOptions.Provider;

    protected override IReadOnlyCollection<string> AllowedDeviceSettings => AscendSettings.Options.Options.Select(o => o.Name).ToArray();

    protected override void AppendExecutionProvider(SessionOptions options, CompileOptions compile)
    {
        var values = AscendSettings.Options.ForSession(settings.ProviderOptions, Info.Id.Index, compile.DeviceSettings);
        using var cann = CannProviderOptions.Create();
        cann.Update(values);
        cann.AppendTo(options);
    }
}
