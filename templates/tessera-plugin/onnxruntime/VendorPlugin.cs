using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

// Tells the host, before it runs any code of this assembly, which class is the plugin and which contract it was built for.
[assembly: TesseraPlugin(typeof(Vendor.Plugin.VendorPlugin))]

namespace Vendor.Plugin;

/// <summary>The plugin: registers one device provider. Settings come from the engine configuration section "vendorkind".</summary>
public sealed class VendorPlugin : ITesseraPlugin
{
    public string Name => "vendorkind";
    public string Vendor => "Example Vendor";
    public Version Version => new(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        foreach (var key in context.Settings.Keys)
            if (key != "devices") throw new ArgumentException($"Unknown vendorkind plugin setting '{key}'. Allowed settings: devices.");
        int devices = 1;
        if (context.Settings.TryGetValue("devices", out var text) && (!int.TryParse(text, out devices) || devices is < 1 or > 64))
            throw new ArgumentException($"vendorkind plugin setting 'devices' is '{text}'; it must be a whole number from 1 to 64.");
        // Optimized graphs are cached per plugin in the folder the host gives it.
        services.AddSingleton<IDeviceProvider>(new VendorDeviceProvider(devices, new OptimizedGraphCache(context.CacheDirectory)));
    }
}

/// <summary>Lists the devices. Probe your driver here; report absent hardware as an unavailable device with a reason.</summary>
public sealed class VendorDeviceProvider(int count, OptimizedGraphCache cache) : IDeviceProvider
{
    public string Kind => "vendorkind";

    public IReadOnlyList<IDevice> EnumerateDevices() => Enumerable.Range(0, count)
        .Select(i => (IDevice)new VendorDevice(new DeviceInfo(
            new DeviceId("vendorkind", i), $"Example Vendor device {i}", IsAvailable: true, UnavailableReason: null,
            TotalMemoryBytes: null, FreeMemoryBytes: null,
            // Only flags from DeviceCapabilities that are true of your device: the host reads them (docs/writing-a-plugin.md).
            Capabilities: new HashSet<string> { DeviceCapabilities.DeviceResidentTensors, DeviceCapabilities.CompiledModelCache },
            PreferenceScore: 5,
            Properties: new Dictionary<string, string> { ["execution_provider"] = VendorDevice.Provider }), cache))
        .ToList();
}

/// <summary>
/// One device, on Tessera's shared ONNX Runtime backend: sessions, the optimized-graph cache, IOBinding, CheckSupport
/// (which nodes ONNX Runtime places on your provider) and errors come from <see cref="OrtDevice"/>. Your part is the
/// execution provider. As written the CPU EP runs everything, so the project passes verify out of the box.
/// </summary>
public sealed class VendorDevice(DeviceInfo info, OptimizedGraphCache cache) : OrtDevice(info, cache)
{
    /// <summary>Your provider's name as ONNX Runtime reports it per node (e.g. "AcmeExecutionProvider").</summary>
    public const string Provider = "CPUExecutionProvider";

    protected override string ProviderName => Provider;

    /// <summary>Device settings (CompileOptions.DeviceSettings) your provider accepts; others are refused by name.</summary>
    protected override IReadOnlyCollection<string> AllowedDeviceSettings => [];

    /// <summary>Append your EP here, e.g. options.AppendExecutionProvider("Acme", settings), validating settings first.</summary>
    protected override void AppendExecutionProvider(SessionOptions options, CompileOptions compile)
    {
    }

    // Where run outputs live. For a device with memory of its own, return its OrtMemoryInfo and false, so outputs
    // (the AR stage's KV cache) stay on the device between runs:
    // protected override OrtMemoryInfo OutputMemory => new("Acme", OrtAllocatorType.DeviceAllocator, deviceId: Info.Id.Index, OrtMemType.Default);
    // protected override bool OutputsHostAccessible => false;
}
