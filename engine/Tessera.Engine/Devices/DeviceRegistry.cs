using Tessera.Abstractions;
using Tessera.Engine.Plugins;

namespace Tessera.Engine.Devices;

/// <summary>A device with the plugin it came from.</summary>
public sealed record RegisteredDevice(IDevice Device, string PluginName)
{
    public DeviceInfo Info => Device.Info;
}

/// <summary>A provider whose enumeration failed (its plugin stays loaded; it offers no devices).</summary>
public sealed record ProviderFailure(string PluginName, string Kind, string Reason);

/// <summary>
/// Every device the loaded plugins offer, by <c>kind:index</c>. Names resolve as <c>cpu:0</c>, <c>cpu</c> (index 0)
/// or <c>auto</c> (the available device with the highest preference score).
/// </summary>
public sealed class DeviceRegistry
{
    public const string Auto = "auto";

    private readonly Dictionary<DeviceId, RegisteredDevice> _devices = [];
    private readonly List<ProviderFailure> _failures = [];
    private readonly IReadOnlyList<PluginStatus> _pluginStatuses;

    /// <param name="plugins">The loaded plugins whose devices to register.</param>
    /// <param name="statuses">Every plugin seen, loaded or failed: failures are quoted when no device is available.</param>
    public DeviceRegistry(IEnumerable<LoadedPlugin> plugins, IReadOnlyList<PluginStatus>? statuses = null)
    {
        _pluginStatuses = statuses ?? [];
        foreach (var plugin in plugins)
            foreach (var provider in plugin.Providers)
            {
                IReadOnlyList<IDevice> devices;
                try
                {
                    devices = provider.EnumerateDevices();
                }
                catch (Exception e)
                {
                    _failures.Add(new ProviderFailure(plugin.Plugin.Name, SafeKind(provider), $"device enumeration failed: {PluginHost.Describe(e)}"));
                    continue;
                }
                foreach (var d in devices)
                {
                    if (_devices.TryGetValue(d.Info.Id, out var existing))
                    {
                        _failures.Add(new ProviderFailure(plugin.Plugin.Name, d.Info.Id.Kind,
                            $"device {d.Info.Id} is also offered by plugin '{existing.PluginName}'; the first one is kept"));
                        continue;
                    }
                    _devices[d.Info.Id] = new RegisteredDevice(d, plugin.Plugin.Name);
                }
            }
    }

    private static string SafeKind(IDeviceProvider p)
    {
        try { return p.Kind; } catch { return "?"; }
    }

    /// <summary>All devices, available or not, ordered by kind then index.</summary>
    public IReadOnlyList<RegisteredDevice> Devices =>
        _devices.Values.OrderBy(d => d.Info.Id.Kind, StringComparer.Ordinal).ThenBy(d => d.Info.Id.Index).ToList();

    /// <summary>Providers that failed to enumerate.</summary>
    public IReadOnlyList<ProviderFailure> Failures => _failures;

    /// <summary>The best available device by preference score, or null when none is available.</summary>
    public RegisteredDevice? Best() => _devices.Values
        .Where(d => d.Info.IsAvailable)
        .OrderByDescending(d => d.Info.PreferenceScore)
        .ThenBy(d => d.Info.Id.Kind, StringComparer.Ordinal)
        .ThenBy(d => d.Info.Id.Index)
        .FirstOrDefault();

    /// <summary>
    /// Finds a device by name (it may be unavailable; see <see cref="Place"/> for policy). Throws
    /// <see cref="ArgumentException"/> naming the device and listing the known ones when it does not exist.
    /// </summary>
    public RegisteredDevice Get(string name)
    {
        if (string.Equals(name?.Trim(), Auto, StringComparison.OrdinalIgnoreCase))
            return Best() ?? throw new DeviceUnavailableException(new DeviceId("auto", 0), $"no device is available. {Summary()}");
        var id = DeviceId.Parse(name!);
        return _devices.TryGetValue(id, out var d)
            ? d
            : throw new ArgumentException($"Unknown device '{name}'. Known devices: {Summary()} Run 'tessera devices' for details.");
    }

    /// <summary>
    /// Chooses the device to use for a request under a fallback policy. An unavailable device is an error under
    /// <see cref="FallbackPolicy.Strict"/>; under <see cref="FallbackPolicy.Allow"/> the best available CPU device is
    /// used instead and the placement says so.
    /// </summary>
    public Placement Place(string name, FallbackPolicy policy)
    {
        var requested = Get(name);
        if (requested.Info.IsAvailable) return new Placement(requested, requested.Info.Id, null);
        if (policy == FallbackPolicy.Strict)
            throw new DeviceUnavailableException(requested.Info.Id,
                $"{requested.Info.UnavailableReason} (fallback policy is strict; use 'allow' to run on the CPU instead)");
        var cpu = FallbackCpu()
            ?? throw new DeviceUnavailableException(requested.Info.Id, $"{requested.Info.UnavailableReason}, and no CPU device is available to fall back to");
        return new Placement(cpu, requested.Info.Id, $"{requested.Info.Id} is not available ({requested.Info.UnavailableReason}); using {cpu.Info.Id} instead");
    }

    /// <summary>The CPU device fallback uses: the available <c>cpu</c> device with the lowest index, or null.</summary>
    public RegisteredDevice? FallbackCpu() =>
        _devices.Values.Where(d => d.Info.Id.Kind == "cpu" && d.Info.IsAvailable).OrderBy(d => d.Info.Id.Index).FirstOrDefault();

    private string Summary() => (_devices.Count == 0
        ? "none (no plugin offered a device)."
        : string.Join(", ", Devices.Select(d => d.Info.IsAvailable ? d.Info.Id.ToString() : $"{d.Info.Id} (unavailable)")) + ".") + Problems();

    /// <summary>Why plugins or providers offer nothing, so "no device is available" comes with its reason.</summary>
    private string Problems()
    {
        var failed = _pluginStatuses.Where(p => p.State == PluginState.Failed).Select(p => $"plugin {p.Name ?? p.Location} failed: {p.Reason}")
            .Concat(_failures.Select(f => $"plugin {f.PluginName} ({f.Kind}): {f.Reason}"))
            .ToList();
        return failed.Count == 0 ? "" : " " + string.Join("; ", failed.Take(4)) + (failed.Count > 4 ? $"; and {failed.Count - 4} more" : "") + ".";
    }
}

/// <summary>Where work was placed: the device used, the one asked for, and the fallback note when they differ.</summary>
public sealed record Placement(RegisteredDevice Device, DeviceId Requested, string? FallbackNote)
{
    public bool FellBack => FallbackNote is not null;
}
