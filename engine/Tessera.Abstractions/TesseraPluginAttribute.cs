namespace Tessera.Abstractions;

/// <summary>
/// Marks an assembly as a Tessera plugin and names its entry type, which implements <see cref="ITesseraPlugin"/>
/// and has a public parameterless constructor:
/// <code>[assembly: TesseraPlugin(typeof(MyPlugin))]</code>
/// The contract version arguments default to the constants of the <c>Tessera.Abstractions</c> the plugin is
/// compiled against, so they are recorded at build time; do not pass them by hand.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false)]
public sealed class TesseraPluginAttribute(
    Type pluginType,
    int contractMajor = TesseraContract.Major,
    int contractMinor = TesseraContract.Minor) : Attribute
{
    public Type PluginType { get; } = pluginType;
    public int ContractMajor { get; } = contractMajor;
    public int ContractMinor { get; } = contractMinor;
}
