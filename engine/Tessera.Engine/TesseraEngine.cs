using Tessera.Abstractions;
using Tessera.Engine.Devices;
using Tessera.Engine.Plugins;

namespace Tessera.Engine;

/// <summary>
/// The host: loaded plugins, the device registry, and compiling models under the operator's placement policy.
/// Create one per process (or resolve it from DI with <c>services.AddTesseraEngine(...)</c>).
/// </summary>
public sealed class TesseraEngine : IDisposable
{
    private readonly PluginHost _plugins;

    public TesseraEngine(EngineOptions options)
    {
        Options = options;
        NativeOnnxRuntime.Apply(options);
        _plugins = PluginHost.Load(options);
        Devices = new DeviceRegistry(_plugins.Loaded);
    }

    public EngineOptions Options { get; }

    /// <summary>Every plugin found, loaded or failed with its reason.</summary>
    public IReadOnlyList<PluginStatus> Plugins => _plugins.Statuses;

    /// <summary>Remarks about plugin folders (missing, empty).</summary>
    public IReadOnlyList<string> PluginNotes => _plugins.Notes;

    /// <summary>Plugins in use.</summary>
    public IReadOnlyList<LoadedPlugin> LoadedPlugins => _plugins.Loaded;

    public DeviceRegistry Devices { get; }

    /// <summary>
    /// Compiles a model on the named device (<c>auto</c>, <c>cpu:0</c>...) under the engine's fallback policy, or
    /// the one in <paramref name="options"/> when given. Under <see cref="FallbackPolicy.Allow"/> the result says
    /// what fell back, whether a whole unavailable device or single nodes.
    /// </summary>
    public CompiledOnDevice Compile(ModelSource model, string device, CompileOptions? options = null)
    {
        options ??= new CompileOptions { Fallback = Options.Fallback };
        var placement = Devices.Place(device, options.Fallback);
        var compiled = placement.Device.Device.Compile(model, options);
        return new CompiledOnDevice(compiled, placement);
    }

    public void Dispose() => _plugins.Dispose();
}

/// <summary>A compiled model and where it was placed.</summary>
public sealed record CompiledOnDevice(ICompiledModel Model, Placement Placement) : IDisposable
{
    /// <summary>Everything that fell back, in sentences (device-level and node-level); empty when nothing did.</summary>
    public IReadOnlyList<string> FallbackNotes =>
        (Placement.FallbackNote is { } n ? [n] : Array.Empty<string>())
        .Concat(Model.Report.FallbackNodes.Select(f => $"{f.OpType} '{f.NodeName}' runs on the CPU{(f.Reason is null ? "" : $" ({f.Reason})")}"))
        .ToList();

    public void Dispose() => Model.Dispose();
}
