using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tessera.Engine.Plugins;

namespace Tessera.Cli.Commands;

/// <summary>
/// <c>tessera plugin install &lt;plugin&gt;</c>: adds the native package a plugin folder names in its
/// native-package.json (the cuda plugin: NuGet's GPU build of onnxruntime) to that folder. See docs/devices.md.
/// </summary>
public static class PluginInstallCommand
{
    public static Command Create()
    {
        var plugin = new Argument<string>("plugin") { Description = "Plugin whose native package to install (cuda)." };
        var package = new Option<FileInfo?>("--package") { Description = "Install from this .nupkg file (downloaded beforehand, e.g. for a machine without NuGet access) instead of fetching it." };
        var source = new Option<string[]>("--source") { Description = "NuGet feed (URL or folder) to fetch from instead of the configured ones (repeatable).", AllowMultipleArgumentsPerToken = false };
        var force = new Option<bool>("--force") { Description = "Install again even when the same package is installed." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var install = new Command("install", "Install a plugin's native package into its folder: for cuda, Microsoft.ML.OnnxRuntime.Gpu.Linux (ONNX Runtime with the CUDA execution provider, about 245 MB to download, 320 MB on disk) into plugins/cuda/native/, fetched with NuGet (dotnet restore: your NuGet.config and feeds apply). tessera then loads that onnxruntime instead of the packaged CPU build. Remove the native/ folder to go back.")
        {
            plugin, package, source, force, json,
        };
        install.SetAction(parse => CliErrors.Run(() =>
        {
            var options = GlobalOptions.Build(parse);
            var folder = PluginNativeInstaller.FindPluginFolder(parse.GetValue(plugin)!, options.ResolvePluginDirectories().Select(d => d.Path));
            var log = parse.GetValue(json) ? TextWriter.Null : Console.Error;
            var sources = parse.GetValue(source) ?? [];
            var r = PluginNativeInstaller.Install(folder, parse.GetValue(package)?.FullName, sources.Length == 0 ? null : sources, parse.GetValue(force), log);
            if (parse.GetValue(json))
            {
                Console.WriteLine(new JsonObject
                {
                    ["plugin"] = parse.GetValue(plugin), ["pluginFolder"] = r.PluginFolder, ["nativeFolder"] = r.NativeFolder, ["library"] = r.Library,
                    ["package"] = r.Package, ["version"] = r.Version, ["source"] = r.Source, ["bytes"] = r.Bytes, ["alreadyInstalled"] = r.AlreadyInstalled,
                }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Console.WriteLine(r.AlreadyInstalled
                ? $"{r.Package} {r.Version} is already installed in {r.NativeFolder} (--force installs it again)."
                : $"Installed {r.Package} {r.Version} into {r.NativeFolder} ({r.Bytes / 1_000_000} MB) from {r.Source}.");
            Console.WriteLine($"tessera now loads {r.Library} (TESSERA_ONNXRUNTIME=packaged keeps the CPU build). Check with: tessera devices");
            return 0;
        }));
        return install;
    }
}
