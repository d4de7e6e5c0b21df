using System.Text.Json;
using Tessera.Abstractions;

namespace Tessera.Engine;

/// <summary>
/// Reads engine options from JSON:
/// <code>
/// { "pluginPaths": ["/opt/tessera/plugins"], "fallback": "allow", "cacheDirectory": "/var/cache/tessera",
///   "plugins": { "cpu": { "devices": "2" } }, "placement": { "ar": "cpu:0", "decoder": "cpu:1" } }
/// </code>
/// Unknown keys are an error naming the key, so a typo never silently does nothing.
/// </summary>
public static class EngineConfigFile
{
    private static readonly string[] TopLevelKeys = ["pluginPaths", "fallback", "cacheDirectory", "onnxRuntimePath", "plugins", "placement", "pluginLoadTimeout"];
    private static readonly string[] Stages = ["ar", "decoder", "vq"];

    public static EngineOptions Load(string path)
    {
        var text = InputFiles.ReadAllText(path, "Configuration file", InputFiles.MaxJsonBytes);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Configuration file {path} is not valid JSON: {e.Message}", e);
        }
        using (doc)
            return Read(doc.RootElement, path);
    }

    private static EngineOptions Read(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"Configuration file {path} must hold a JSON object.");
        var options = new EngineOptions();
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var p in root.EnumerateObject())
        {
            switch (p.Name)
            {
                case "pluginPaths":
                    foreach (var item in Array(p, path))
                        options.PluginDirectories.Add(Path.GetFullPath(Path.Combine(baseDir, String(item, "pluginPaths[]", path))));
                    break;
                case "fallback":
                    var text = String(p.Value, p.Name, path);
                    options.Fallback = Enum.TryParse<FallbackPolicy>(text, ignoreCase: true, out var f)
                        ? f
                        : throw new InvalidDataException($"Configuration file {path}: 'fallback' is '{text}'; allowed values: strict, allow.");
                    break;
                case "cacheDirectory":
                    options.CacheDirectory = Path.GetFullPath(Path.Combine(baseDir, String(p.Value, p.Name, path)));
                    break;
                case "onnxRuntimePath":
                    options.OnnxRuntimePath = Path.GetFullPath(Path.Combine(baseDir, String(p.Value, p.Name, path)));
                    break;
                case "pluginLoadTimeout":
                    options.PluginLoadTimeout = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out var seconds) && seconds is >= 0.1 and <= 3600
                        ? TimeSpan.FromSeconds(seconds)
                        : throw new InvalidDataException($"Configuration file {path}: 'pluginLoadTimeout' is {p.Value.GetRawText()}; give seconds from 0.1 to 3600.");
                    break;
                case "plugins":
                    if (p.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"Configuration file {path}: 'plugins' must be an object of plugin name → settings.");
                    foreach (var plugin in p.Value.EnumerateObject())
                    {
                        if (plugin.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"Configuration file {path}: 'plugins.{plugin.Name}' must be an object of settings.");
                        options.PluginSettings[plugin.Name] = plugin.Value.EnumerateObject()
                            .ToDictionary(s => s.Name, s => s.Value.ValueKind == JsonValueKind.String ? s.Value.GetString()! : s.Value.GetRawText());
                    }
                    break;
                case "placement":
                    if (p.Value.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"Configuration file {path}: 'placement' must be an object of stage → device, e.g. {{ \"ar\": \"cpu:0\", \"decoder\": \"cpu:1\" }}.");
                    foreach (var stage in p.Value.EnumerateObject())
                    {
                        if (!Stages.Contains(stage.Name))
                            throw new InvalidDataException($"Configuration file {path}: 'placement.{stage.Name}' is not a stage; stages are {string.Join(", ", Stages)}.");
                        var device = String(stage.Value, $"placement.{stage.Name}", path);
                        if (device != "auto" && !DeviceId.TryParse(device, out _))
                            throw new InvalidDataException($"Configuration file {path}: 'placement.{stage.Name}' is '{device}'; use auto or kind:index such as cpu:1.");
                        options.Placement[stage.Name] = device;
                    }
                    break;
                default:
                    throw new InvalidDataException($"Configuration file {path}: unknown key '{p.Name}'. Allowed keys: {string.Join(", ", TopLevelKeys)}.");
            }
        }
        return options;
    }

    private static JsonElement.ArrayEnumerator Array(JsonProperty p, string path) =>
        p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray() : throw new InvalidDataException($"Configuration file {path}: '{p.Name}' must be an array.");

    private static string String(JsonElement e, string key, string path) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new InvalidDataException($"Configuration file {path}: '{key}' must be a string.");
}
