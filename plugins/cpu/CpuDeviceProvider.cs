using Tessera.Abstractions;
using Tessera.Plugins.OnnxRuntime;

namespace Tessera.Plugins.Cpu;

/// <summary>Exposes the machine's CPU as one or more devices (<c>cpu:0</c>, <c>cpu:1</c>...), each with its own thread pool.</summary>
public sealed class CpuDeviceProvider(CpuSettings settings, OptimizedGraphCache cache) : IDeviceProvider
{
    public string Kind => "cpu";

    public IReadOnlyList<IDevice> EnumerateDevices()
    {
        var name = CpuName();
        var flags = CpuFlags();
        var (total, free) = Memory();
        var isa = string.Join(" ", new[] { "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "neon" }.Where(flags.Contains));
        return Enumerable.Range(0, settings.Devices)
            .Select(i => (IDevice)new CpuDevice(new DeviceInfo(
                new DeviceId("cpu", i),
                name,
                IsAvailable: true,
                UnavailableReason: null,
                TotalMemoryBytes: total,
                FreeMemoryBytes: free,
                Capabilities: new HashSet<string> { DeviceCapabilities.Int8, DeviceCapabilities.DeviceResidentTensors, DeviceCapabilities.CompiledModelCache },
                PreferenceScore: 10,
                Properties: new Dictionary<string, string>
                {
                    ["threads"] = settings.ThreadsPerDevice.ToString(),
                    ["spin"] = settings.Spin ? "on" : "off",
                    ["logical_cores"] = Environment.ProcessorCount.ToString(),
                    ["execution_provider"] = "CPUExecutionProvider",
                    ["isa"] = isa.Length > 0 ? isa : "baseline",
                }), settings.ThreadsPerDevice, cache, $"{name}|{string.Join(",", flags.Order(StringComparer.Ordinal))}", settings.Spin))
            .ToList();
    }

    private static string CpuName()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU";
    }

    /// <summary>The CPU's feature flags from /proc/cpuinfo (empty where unreadable).</summary>
    private static HashSet<string> CpuFlags()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal) || l.StartsWith("Features", StringComparison.Ordinal));
            return line is null ? [] : line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>MemTotal and MemAvailable from /proc/meminfo, in bytes; nulls where unknown.</summary>
    private static (long? Total, long? Free) Memory()
    {
        try
        {
            long? Read(string key) => File.ReadLines("/proc/meminfo")
                .Where(l => l.StartsWith(key + ":", StringComparison.Ordinal))
                .Select(l => (long?)long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024)
                .FirstOrDefault();
            return (Read("MemTotal"), Read("MemAvailable"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            var gc = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            return (gc > 0 ? gc : null, null);
        }
    }
}
