using Tessera.Abstractions;

namespace Tessera.Engine;

/// <summary>How the engine finds plugins and places work. Bind from code or from a JSON configuration file.</summary>
public sealed class EngineOptions
{
    /// <summary>Environment variable with extra plugin folders, separated by the OS path separator (':' on Linux).</summary>
    public const string PluginPathVariable = "TESSERA_PLUGIN_PATH";

    /// <summary>Environment variable overriding the cache folder.</summary>
    public const string CacheDirectoryVariable = "TESSERA_CACHE_DIR";

    /// <summary>
    /// Folders to search. Each is either one plugin's folder (it holds the plugin's .dll and .deps.json) or a folder
    /// of plugin folders. Searched in order after <see cref="DefaultPluginDirectory"/> and before <see cref="PluginPathVariable"/>.
    /// </summary>
    public List<string> PluginDirectories { get; } = [];

    /// <summary>Search <c>plugins/</c> next to the executable. Default: true.</summary>
    public bool UseDefaultPluginDirectory { get; set; } = true;

    /// <summary>Read <see cref="PluginPathVariable"/>. Default: true.</summary>
    public bool UseEnvironmentPluginPath { get; set; } = true;

    /// <summary>Settings handed to each plugin, by plugin name (e.g. <c>cpu → { devices: 2 }</c>).</summary>
    public Dictionary<string, Dictionary<string, string>> PluginSettings { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>What happens when a requested device is unavailable or cannot run a whole graph. Default: strict.</summary>
    public FallbackPolicy Fallback { get; set; } = FallbackPolicy.Strict;

    /// <summary>
    /// Where each pipeline stage runs by default (stage name → device name, e.g. <c>ar → cpu:0</c>,
    /// <c>decoder → cpu:1</c>); command-line flags override it. Unlisted stages use <c>auto</c>.
    /// </summary>
    public Dictionary<string, string> Placement { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The device for a stage: the placement entry, else <paramref name="fallback"/>.</summary>
    public string DeviceFor(string stage, string fallback = "auto") => Placement.TryGetValue(stage, out var d) ? d : fallback;

    /// <summary>Cache folder (optimized graphs). Default: $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera, else ~/.cache/tessera.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>A native onnxruntime to use instead of the packaged CPU build (a CUDA or CANN build); default $TESSERA_ONNXRUNTIME.</summary>
    public string? OnnxRuntimePath { get; set; }

    /// <summary>
    /// How long one plugin may take to load (constructor, ConfigureServices, creating its device providers) before
    /// the host gives up on it and records it as failed. Default 30 s. A plugin runs in the host process: this bounds
    /// a hang, it cannot stop a plugin that crashes the process (see docs/security.md).
    /// </summary>
    public TimeSpan PluginLoadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary><c>plugins/</c> next to the running executable.</summary>
    public static string DefaultPluginDirectory => Path.Combine(AppContext.BaseDirectory, "plugins");

    /// <summary>The folders that will be searched, in order, with where each came from.</summary>
    public IReadOnlyList<(string Path, string Origin)> ResolvePluginDirectories()
    {
        var list = new List<(string, string)>();
        if (UseDefaultPluginDirectory) list.Add((DefaultPluginDirectory, "default"));
        list.AddRange(PluginDirectories.Select(d => (Path.GetFullPath(d), "configured")));
        if (UseEnvironmentPluginPath && Environment.GetEnvironmentVariable(PluginPathVariable) is { Length: > 0 } env)
            list.AddRange(env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(d => (Path.GetFullPath(d), PluginPathVariable)));
        return list.DistinctBy(d => d.Item1).ToList();
    }

    /// <summary>The cache folder after defaults are applied.</summary>
    public string ResolveCacheDirectory()
    {
        if (!string.IsNullOrEmpty(CacheDirectory)) return Path.GetFullPath(CacheDirectory);
        if (Environment.GetEnvironmentVariable(CacheDirectoryVariable) is { Length: > 0 } env) return Path.GetFullPath(env);
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "tessera");
    }
}
