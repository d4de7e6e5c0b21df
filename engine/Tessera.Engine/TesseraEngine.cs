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
        try
        {
            RequireKnownPluginSettings(options, _plugins);
        }
        catch
        {
            _plugins.Dispose();
            throw;
        }
        Devices = new DeviceRegistry(_plugins.Loaded, _plugins.Statuses);
    }

    /// <summary>Settings for a plugin that is not installed would silently do nothing: an error naming the key.</summary>
    private static void RequireKnownPluginSettings(EngineOptions options, PluginHost plugins)
    {
        var known = plugins.Statuses.Select(s => s.Name).OfType<string>()
            .Concat(plugins.Statuses.Select(s => Path.GetFileName(Path.GetDirectoryName(s.Location) ?? "")))
            .Concat(plugins.Statuses.Select(s => Path.GetFileName(s.Location)))
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var name in options.PluginSettings.Keys)
            if (!known.Contains(name))
                throw new TesseraException($"The configuration has settings for plugin '{name}' (plugins.{name}), but no plugin of that name was found " +
                    $"(found: {(plugins.Loaded.Count == 0 ? "none" : string.Join(", ", plugins.Loaded.Select(p => p.Plugin.Name)))}). Fix the name, or install the plugin / add its folder with --plugin-path.");
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
        return Compile(model, Devices.Place(device, options.Fallback), options);
    }

    /// <summary>
    /// Compiles the variant of a model the placed device declares a capability for (<see cref="ModelVariants.For"/>:
    /// int8, then fp16, then bf16, else the default), under the same policy as <see cref="Compile(ModelSource, string, CompileOptions?)"/>.
    /// The result's <see cref="CompiledOnDevice.Variant"/> says which one and why.
    /// </summary>
    public CompiledOnDevice Compile(ModelVariants model, string device, CompileOptions? options = null)
    {
        options ??= new CompileOptions { Fallback = Options.Fallback };
        var placement = Devices.Place(device, options.Fallback);
        var (chosen, capability) = model.For(placement.Device.Info);
        var compiled = Compile(chosen, placement, options);
        return capability is null ? compiled : compiled with
        {
            Variant = $"{Path.GetFileName(chosen.DisplayName)} (the {capability} variant: {placement.Device.Info.Id} declares {capability})",
        };
    }

    private CompiledOnDevice Compile(ModelSource model, Placement placement, CompileOptions options)
    {
        try
        {
            return new CompiledOnDevice(placement.Device.Device.Compile(model, options), placement);
        }
        catch (FallbackNotAllowedException refused) when (options.Fallback == FallbackPolicy.Allow)
        {
            // The device cannot run some nodes and does not fall back itself: the host cuts the graph (Partitioning/).
            var cpu = placement.Device.Info.Id.Kind == "cpu" ? null : Devices.FallbackCpu();
            if (cpu is null)
                throw new TesseraException($"Model '{model.DisplayName}' cannot run entirely on {placement.Device.Info.Id} even with fallback 'allow', " +
                    $"and there is no other CPU device to run the rest ({refused.Message.Split(". Use fallback policy", 2)[0]}). Install the cpu plugin, or choose another device.", refused);
            var partitioned = Partitioning.HostPartitioning.Compile(model, placement.Device, cpu, options, refused);
            return new CompiledOnDevice(partitioned, placement);
        }
    }

    public void Dispose() => _plugins.Dispose();
}

/// <summary>A compiled model and where it was placed.</summary>
public sealed record CompiledOnDevice(ICompiledModel Model, Placement Placement) : IDisposable
{
    /// <summary>Which precision variant was compiled and why (see <see cref="ModelVariants"/>); null for the default model.</summary>
    public string? Variant { get; init; }

    /// <summary>Everything that fell back, in sentences (device-level and node-level); empty when nothing did.</summary>
    public IReadOnlyList<string> FallbackNotes =>
        (Placement.FallbackNote is { } n ? [n] : Array.Empty<string>())
        .Concat(Model is Partitioning.PartitionedModel p
            ? p.PartitionLines
            : Model.Report.FallbackNodes.Select(f => $"{f.OpType} '{f.NodeName}' runs on the CPU{(f.Reason is null ? "" : $" ({f.Reason})")}"))
        .ToList();

    public void Dispose() => Model.Dispose();
}
