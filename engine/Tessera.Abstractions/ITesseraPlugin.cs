using Microsoft.Extensions.DependencyInjection;

namespace Tessera.Abstractions;

/// <summary>
/// A plugin's entry point. The host creates it once, reads its identity, and calls
/// <see cref="ConfigureServices"/> so it can register one or more <see cref="IDeviceProvider"/>s
/// (and anything they need) into the host's service collection.
/// </summary>
/// <remarks>
/// Keep the constructor cheap and free of native calls: probing hardware belongs in
/// <see cref="IDeviceProvider.EnumerateDevices"/>, where a failure becomes an unavailable device with a reason.
/// </remarks>
public interface ITesseraPlugin
{
    /// <summary>Short lowercase name, unique per host (e.g. <c>cpu</c>, <c>cuda</c>).</summary>
    string Name { get; }

    /// <summary>Who ships the plugin.</summary>
    string Vendor { get; }

    /// <summary>The plugin's own version (not the contract version).</summary>
    Version Version { get; }

    /// <summary>Registers the plugin's services. Throwing here marks the plugin as failed; nothing it added is kept.</summary>
    void ConfigureServices(IServiceCollection services, PluginContext context);
}

/// <summary>What the host tells a plugin when it configures it.</summary>
/// <param name="PluginDirectory">Folder the plugin was loaded from (for its own native libraries or data).</param>
/// <param name="Settings">
/// Operator settings for this plugin (<c>key → value</c>, from the engine configuration section named after
/// the plugin). Plugins validate them and throw <see cref="ArgumentException"/> naming the key and the allowed values.
/// </param>
/// <param name="CacheDirectory">A folder the plugin may use for caches (e.g. optimized graphs); it exists.</param>
public sealed record PluginContext(
    string PluginDirectory,
    IReadOnlyDictionary<string, string> Settings,
    string CacheDirectory);
