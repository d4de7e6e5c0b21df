using System.Reflection;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Tessera.Abstractions;

namespace Tessera.Engine.Plugins;

/// <summary>
/// Loads plugins from folders. Each plugin gets its own load context (McMaster.NETCore.Plugins) with the contract,
/// dependency-injection abstractions and ONNX Runtime shared from the host, and its own service container.
/// A plugin that fails in any way is recorded with a reason; the host carries on with the others.
/// </summary>
public sealed class PluginHost : IDisposable
{
    /// <summary>
    /// Types whose assemblies plugins share with the host. ONNX Runtime is among them so that the process loads
    /// exactly one managed and one native onnxruntime, whatever each plugin folder contains.
    /// </summary>
    public static readonly Type[] SharedTypes =
    [
        typeof(ITesseraPlugin),
        typeof(IServiceCollection),
        typeof(ServiceProvider),
        typeof(Microsoft.ML.OnnxRuntime.InferenceSession),
    ];

    private readonly List<LoadedPlugin> _loaded = [];
    private readonly List<PluginStatus> _statuses = [];
    private readonly List<string> _notes = [];

    /// <summary>Every plugin location seen: loaded and failed, in discovery order.</summary>
    public IReadOnlyList<PluginStatus> Statuses => _statuses;

    /// <summary>Plugins in use.</summary>
    public IReadOnlyList<LoadedPlugin> Loaded => _loaded;

    /// <summary>Remarks about the search itself (folders that do not exist, folders with no plugins).</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>Discovers and loads the plugins the options point to.</summary>
    public static PluginHost Load(EngineOptions options)
    {
        var host = new PluginHost();
        var cacheRoot = options.ResolveCacheDirectory();
        RequireWritableCache(cacheRoot);
        foreach (var (dir, origin) in options.ResolvePluginDirectories())
        {
            if (!Directory.Exists(dir))
            {
                if (origin != "default") host._notes.Add($"plugin folder {dir} ({origin}) does not exist");
                continue;
            }
            var candidates = PluginDiscovery.Find(dir);
            if (candidates.Count == 0) host._notes.Add($"plugin folder {dir} ({origin}) holds no plugins");
            foreach (var c in candidates)
            {
                if (c.AssemblyPath is null) host._statuses.Add(PluginStatus.Failed(c.Folder, c.Problem!));
                else host.LoadOne(c.AssemblyPath, options, cacheRoot);
            }
        }
        return host;
    }

    private void LoadOne(string path, EngineOptions options, string cacheRoot)
    {
        if (_statuses.Any(s => s.Location == path)) return;

        // 1. Read metadata without loading: is it an assembly, and which contract was it built against?
        PluginAssemblyInspector.Facts facts;
        try
        {
            facts = PluginAssemblyInspector.Inspect(path);
        }
        catch (Exception e) when (e is BadImageFormatException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            _statuses.Add(PluginStatus.Failed(path, $"{path} is not a valid .NET assembly ({e.Message}); the file may be corrupt or truncated. Rebuild or reinstall the plugin."));
            return;
        }
        if (!facts.HasPluginAttribute)
        {
            _statuses.Add(PluginStatus.Failed(path, $"{path} has no [assembly: TesseraPlugin(typeof(...))] attribute, so it is not a Tessera plugin. Add the attribute naming the plugin's ITesseraPlugin type."));
            return;
        }
        var declared = facts.DeclaredContract ?? facts.ReferencedAbstractions;
        var host = TesseraContract.Version;
        if (declared is null || declared.Major != host.Major || declared.Minor > host.Minor)
        {
            var plugin = declared is null ? "an unknown version" : $"{declared.Major}.{declared.Minor}";
            var advice = declared is not null && declared.Major == host.Major
                ? "Update Tessera, or rebuild the plugin against this version of Tessera.Abstractions."
                : $"Rebuild the plugin against Tessera.Abstractions {host.Major}.x, or use a Tessera host for contract {plugin}.";
            _statuses.Add(PluginStatus.Failed(path, $"{path} was built for plugin contract {plugin}, but this host implements contract {host.Major}.{host.Minor}. {advice}", declared));
            return;
        }

        // 2. Load in its own context and create the entry object, on a thread of its own so that a plugin that
        // hangs in its constructor or ConfigureServices costs a bounded wait, not the host (see docs/security.md).
        LoadedPlugin? loaded = null;
        PluginStatus? failed = null;
        bool abandoned = false;
        var gate = new object();
        string? knownName = null; // the plugin's Name once its entry object exists: a failed row shows it, not the dll's
        void Load()
        {
        PluginLoader? loader = null;
        try
        {
            loader = PluginLoader.CreateFromAssemblyFile(path, SharedTypes, cfg => cfg.PreferSharedTypes = true);
            var assembly = loader.LoadDefaultAssembly();
            var attribute = assembly.GetCustomAttribute<TesseraPluginAttribute>()
                ?? throw new PluginFailure($"{path}: its TesseraPlugin attribute does not bind to the host's contract type. The plugin folder probably carries its own copy of Tessera.Abstractions; reference it with Private=false.");
            if (!typeof(ITesseraPlugin).IsAssignableFrom(attribute.PluginType))
                throw new PluginFailure($"{path}: {attribute.PluginType.FullName} named by the TesseraPlugin attribute does not implement ITesseraPlugin.");

            ITesseraPlugin entry;
            try
            {
                entry = (ITesseraPlugin)(Activator.CreateInstance(attribute.PluginType)
                    ?? throw new PluginFailure($"{path}: could not create {attribute.PluginType.FullName}."));
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw new PluginFailure($"{path}: the constructor of {attribute.PluginType.FullName} threw {Describe(e.InnerException)}", e.InnerException);
            }
            catch (MissingMethodException e)
            {
                throw new PluginFailure($"{path}: {attribute.PluginType.FullName} needs a public parameterless constructor ({e.Message}).", e);
            }

            var name = entry.Name;
            knownName = name;
            if (_loaded.FirstOrDefault(p => string.Equals(p.Plugin.Name, name, StringComparison.OrdinalIgnoreCase)) is { } twin)
                throw new PluginFailure($"{path}: a plugin named '{name}' is already loaded from {twin.Status.Location}; remove one of them from the plugin path.");

            // 3. Let it register services into a collection of its own; keep nothing if it throws.
            var services = new ServiceCollection();
            var settings = options.PluginSettings.TryGetValue(name, out var s) ? s : new Dictionary<string, string>();
            var cacheDir = Path.Combine(cacheRoot, "plugins", name);
            Directory.CreateDirectory(cacheDir);
            try
            {
                entry.ConfigureServices(services, new PluginContext(Path.GetDirectoryName(path)!, settings, cacheDir));
            }
            catch (Exception e)
            {
                throw new PluginFailure($"{path}: plugin '{name}' failed to configure its services: {Describe(e)}", e);
            }

            ServiceProviderHolder provider = new(services.BuildServiceProvider());
            List<IDeviceProvider> providers;
            try
            {
                providers = provider.Provider.GetServices<IDeviceProvider>().ToList();
            }
            catch (Exception e)
            {
                provider.Dispose();
                throw new PluginFailure($"{path}: plugin '{name}' could not create its device providers: {Describe(e)}", e);
            }
            if (providers.Count == 0)
            {
                provider.Dispose();
                throw new PluginFailure($"{path}: plugin '{name}' registered no IDeviceProvider, so it offers no devices.");
            }

            var status = new PluginStatus(path, PluginState.Loaded, null, name, entry.Vendor, entry.Version, declared);
            var plugin = new LoadedPlugin(status, entry, loader, provider, providers);
            lock (gate)
            {
                if (abandoned) { plugin.Dispose(); return; } // finished after the host gave up on it
                loaded = plugin;
            }
            loader = null; // owned by the LoadedPlugin now
        }
        catch (PluginFailure e)
        {
            failed = PluginStatus.Failed(path, e.Message, declared, knownName);
        }
        catch (Exception e)
        {
            failed = PluginStatus.Failed(path, $"{path} could not be loaded: {Describe(e)}", declared, knownName);
        }
        finally
        {
            loader?.Dispose();
        }
        }

        // 8 MiB of stack, as the main thread has: a plugin must not overflow here where it would not have before.
        var thread = new Thread(Load, maxStackSize: 8 << 20) { IsBackground = true, Name = $"tessera-plugin-load {Path.GetFileName(path)}" };
        thread.Start();
        if (!thread.Join(options.PluginLoadTimeout))
        {
            lock (gate) abandoned = true;
            _statuses.Add(PluginStatus.Failed(path,
                $"{path} did not finish loading within {options.PluginLoadTimeout.TotalSeconds:0.#} s (its constructor, ConfigureServices or device providers hang); it is skipped. " +
                "Fix or remove the plugin, or raise pluginLoadTimeout in the configuration if it is only slow.", declared, knownName));
            return;
        }
        if (loaded is not null) { _loaded.Add(loaded); _statuses.Add(loaded.Status); }
        else if (failed is not null) _statuses.Add(failed);
    }


    /// <summary>
    /// The cache folder must be usable before any plugin loads: otherwise every plugin would fail with the same
    /// error and the operator would only hear that no device is available.
    /// </summary>
    private static void RequireWritableCache(string cacheRoot)
    {
        try
        {
            Directory.CreateDirectory(cacheRoot);
            var probe = Path.Combine(cacheRoot, $".write-test.{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new TesseraException($"The cache folder {cacheRoot} is not usable ({e.Message}). Set cacheDirectory in the configuration, or {EngineOptions.CacheDirectoryVariable}, to a folder this user can write.", e);
        }
    }

    /// <summary>"TypeName: message", with a hint for missing native libraries.</summary>
    internal static string Describe(Exception e)
    {
        if (e is TargetInvocationException { InnerException: { } inner }) e = inner;
        var text = $"{e.GetType().Name}: {e.Message}";
        if (e is DllNotFoundException)
            text += " (a native library the plugin needs is missing; install it or add its folder to LD_LIBRARY_PATH)";
        return text;
    }

    public void Dispose()
    {
        foreach (var p in _loaded) p.Dispose();
        _loaded.Clear();
    }

    private sealed class PluginFailure(string message, Exception? inner = null) : Exception(message, inner);
}
