using Tessera.Abstractions;

namespace Tessera.Engine.Plugins;

/// <summary>Whether a plugin is in use.</summary>
public enum PluginState
{
    Loaded,
    Failed,
}

/// <summary>What the host found at one plugin location, and why it failed if it did.</summary>
/// <param name="Location">The plugin's assembly (or folder, when no assembly was found).</param>
/// <param name="State">Loaded or failed.</param>
/// <param name="Reason">For a failure: what was wrong and what to do.</param>
/// <param name="Name">Plugin name, when it got that far.</param>
/// <param name="Vendor">Plugin vendor, when it got that far.</param>
/// <param name="Version">Plugin version, when it got that far.</param>
/// <param name="ContractVersion">The contract version the plugin was built against, when it could be read.</param>
public sealed record PluginStatus(
    string Location,
    PluginState State,
    string? Reason,
    string? Name = null,
    string? Vendor = null,
    Version? Version = null,
    Version? ContractVersion = null)
{
    public static PluginStatus Failed(string location, string reason, Version? contract = null, string? name = null) =>
        new(location, PluginState.Failed, reason, Name: name, ContractVersion: contract);
}
