using Microsoft.Extensions.DependencyInjection;
using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

[assembly: TesseraPlugin(typeof(Tessera.Plugins.Cpu.CpuPlugin))]

namespace Tessera.Plugins.Cpu;

/// <summary>
/// The CPU reference plugin, on ONNX Runtime's CPU execution provider.
/// Settings (engine configuration section <c>cpu</c>):
/// <list type="bullet">
/// <item><c>devices</c>: how many CPU devices to expose (1..cores, default 1); cores are split between them so each has its own thread pool.</item>
/// <item><c>threads</c>: intra-op threads per device (default: cores / devices).</item>
/// <item><c>spin</c>: on (default) or off: whether idle intra-op threads spin waiting for work. Off helps when several
/// sessions run at once on few cores (e.g. tessera serve's AR and decoder loops).</item>
/// </list>
/// </summary>
public sealed class CpuPlugin : ITesseraPlugin
{
    public string Name => "cpu";
    public string Vendor => "Tessera";
    public Version Version => typeof(CpuPlugin).Assembly.GetName().Version ?? new Version(0, 1);

    public void ConfigureServices(IServiceCollection services, PluginContext context)
    {
        var settings = CpuSettings.Parse(context.Settings);
        var cache = new OptimizedGraphCache(context.CacheDirectory);
        services.AddSingleton<IDeviceProvider>(new CpuDeviceProvider(settings, cache));
    }
}

/// <summary>Validated CPU plugin settings.</summary>
public sealed record CpuSettings(int Devices, int ThreadsPerDevice, bool Spin = true)
{
    public static readonly string[] Keys = ["devices", "threads", "spin"];

    public static CpuSettings Parse(IReadOnlyDictionary<string, string> settings)
    {
        foreach (var key in settings.Keys)
            if (!Keys.Contains(key))
                throw new ArgumentException($"Unknown cpu plugin setting '{key}'. Allowed settings: {string.Join(", ", Keys)}.");
        int cores = Environment.ProcessorCount;
        int devices = ReadInt(settings, "devices", 1, 1, cores);
        int threads = ReadInt(settings, "threads", Math.Max(1, cores / devices), 1, 1024);
        bool spin = !settings.TryGetValue("spin", out var spinText) || spinText.ToLowerInvariant() switch
        {
            "on" or "true" or "1" => true,
            "off" or "false" or "0" => false,
            _ => throw new ArgumentException($"cpu plugin setting 'spin' is '{spinText}'; allowed values: on, off."),
        };
        return new CpuSettings(devices, threads, spin);
    }

    private static int ReadInt(IReadOnlyDictionary<string, string> s, string key, int fallback, int min, int max)
    {
        if (!s.TryGetValue(key, out var text)) return fallback;
        if (!int.TryParse(text, out var v) || v < min || v > max)
            throw new ArgumentException($"cpu plugin setting '{key}' is '{text}'; it must be a whole number from {min} to {max}.");
        return v;
    }
}
