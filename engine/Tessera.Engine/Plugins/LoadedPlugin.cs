using McMaster.NETCore.Plugins;
using Tessera.Abstractions;

namespace Tessera.Engine.Plugins;

/// <summary>A plugin that loaded: its entry object, its services and the devices its providers reported.</summary>
public sealed class LoadedPlugin : IDisposable
{
    private readonly PluginLoader _loader;
    private readonly ServiceProviderHolder _services;

    internal LoadedPlugin(PluginStatus status, ITesseraPlugin plugin, PluginLoader loader, ServiceProviderHolder services,
        IReadOnlyList<IDeviceProvider> providers)
    {
        Status = status;
        Plugin = plugin;
        _loader = loader;
        _services = services;
        Providers = providers;
    }

    public PluginStatus Status { get; }
    public ITesseraPlugin Plugin { get; }

    /// <summary>The plugin's device providers, resolved from its own service container.</summary>
    public IReadOnlyList<IDeviceProvider> Providers { get; }

    /// <summary>The plugin's service container (what it registered in <see cref="ITesseraPlugin.ConfigureServices"/>).</summary>
    public IServiceProvider Services => _services.Provider;

    public void Dispose()
    {
        _services.Dispose();
        _loader.Dispose();
    }
}

/// <summary>Owns a built service provider and disposes it.</summary>
internal sealed class ServiceProviderHolder(IServiceProvider provider) : IDisposable
{
    public IServiceProvider Provider { get; } = provider;
    public void Dispose() => (Provider as IDisposable)?.Dispose();
}
