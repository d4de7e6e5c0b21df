using System.CommandLine;
using Tessera.Abstractions;
using Tessera.Engine;

namespace Tessera.Cli;

/// <summary>Options every command takes: where plugins are, engine configuration, fallback policy.</summary>
public static class GlobalOptions
{
    public static readonly Option<FileInfo?> Config = new("--config")
    {
        Description = "Engine configuration file (JSON: pluginPaths, plugins.<name>.<setting>, fallback, cacheDirectory, onnxRuntimePath, placement).",
        Recursive = true,
    };

    public static readonly Option<string[]> PluginPath = new("--plugin-path")
    {
        Description = "Extra plugin folder (repeatable). Also read: plugins/ next to tessera, and $TESSERA_PLUGIN_PATH.",
        Recursive = true,
        AllowMultipleArgumentsPerToken = false,
    };

    public static readonly Option<FallbackPolicy?> Fallback = new("--fallback")
    {
        Description = "When a device is unavailable or cannot run a whole graph: strict (fail) or allow (use the CPU and report it). Default: strict.",
        Recursive = true,
    };

    public static void AddTo(RootCommand root)
    {
        root.Options.Add(Config);
        root.Options.Add(PluginPath);
        root.Options.Add(Fallback);
    }

    /// <summary>Engine options from the configuration file, then the command line.</summary>
    public static EngineOptions Build(ParseResult parse)
    {
        var options = parse.GetValue(Config) is { } file ? EngineConfigFile.Load(file.FullName) : new EngineOptions();
        options.PluginDirectories.AddRange(parse.GetValue(PluginPath) ?? []);
        if (parse.GetValue(Fallback) is { } f) options.Fallback = f;
        return options;
    }
}
