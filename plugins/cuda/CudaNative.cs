using System.Text.Json;
using Tessera.Plugins.OnnxRuntime;

namespace Tessera.Plugins.Cuda;

/// <summary>
/// Which native onnxruntime the process uses, and the GPU build the plugin may carry in its folder.
/// <para>
/// The CUDA execution provider needs an onnxruntime built with CUDA. The plugin ships without one (the NuGet GPU
/// package is hundreds of MB); <c>tessera plugin install cuda</c> fetches the package named in the plugin's
/// <c>native-package.json</c> (Microsoft.ML.OnnxRuntime.Gpu.Linux) into <c>&lt;plugin&gt;/native/</c> with an
/// <c>onnxruntime.json</c> receipt, and the host then loads that library instead of its packaged CPU build, before any
/// plugin runs: still one native onnxruntime per process, shared by every plugin.
/// </para>
/// </summary>
public static class CudaNative
{
    /// <summary>What the plugin folder says it can install (shipped with the plugin).</summary>
    public const string PackageManifestFile = "native-package.json";

    /// <summary>Folder under the plugin folder that receives the GPU native, and the receipt written there.</summary>
    public const string NativeFolder = "native", ReceiptFile = "onnxruntime.json";

    /// <summary>The provider library ONNX Runtime loads for CUDA, beside libonnxruntime.so.</summary>
    public const string ProviderLibrary = "libonnxruntime_providers_cuda.so";

    /// <summary>The package and version named by a manifest or receipt.</summary>
    public sealed record Package(string Id, string Version, string Library);

    /// <summary>The plugin's <c>native-package.json</c>, or null when the folder has none.</summary>
    public static Package? Offered(string pluginDirectory) => Read(Path.Combine(pluginDirectory, PackageManifestFile));

    /// <summary>The receipt of an installed GPU native in the plugin folder, or null when none is installed.</summary>
    public static Package? Installed(string pluginDirectory) => Read(Path.Combine(pluginDirectory, NativeFolder, ReceiptFile));

    private static Package? Read(string file)
    {
        if (!File.Exists(file)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            var root = doc.RootElement;
            return new Package(root.GetProperty("package").GetString() ?? "", root.GetProperty("version").GetString() ?? "",
                root.TryGetProperty("library", out var l) ? l.GetString() ?? "libonnxruntime.so" : "libonnxruntime.so");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            return new Package("", "", "libonnxruntime.so");
        }
    }

    /// <summary>Full path of the native onnxruntime this process uses (the one the managed package is bound to), or null.</summary>
    public static string? LoadedLibraryPath() => OrtNativeApi.ManagedPackageLibraryPath() is { } path ? Path.GetFullPath(path) : null;

    /// <summary>
    /// Why the loaded onnxruntime cannot run CUDA, in terms of what the operator does next; null when it has the CUDA
    /// execution provider.
    /// </summary>
    public static string? RuntimeReason(string pluginDirectory, string? loadedPath, string nativeVersion, IReadOnlyCollection<string> providers)
    {
        if (providers.Contains(CudaSettings.Provider)) return null;
        var loaded = $"{loadedPath ?? "the packaged onnxruntime"} (ONNX Runtime {nativeVersion}; providers: {string.Join(", ", providers)})";
        var native = Path.Combine(pluginDirectory, NativeFolder);
        var offered = Offered(pluginDirectory);
        var install = offered is null
            ? "install an onnxruntime built with CUDA and start tessera with TESSERA_ONNXRUNTIME pointing at its libonnxruntime.so"
            : $"run `tessera plugin install cuda` (it fetches {offered.Id} {offered.Version} from NuGet into {native})";
        var installed = Installed(pluginDirectory);
        if (installed is null)
            return $"the GPU build of onnxruntime is not installed: the loaded one, {loaded}, has no CUDA execution provider. To add it, {install}.";
        var library = Path.GetFullPath(Path.Combine(native, installed.Library));
        if (loadedPath is not null && string.Equals(library, loadedPath, StringComparison.Ordinal))
            return $"{library} was installed as {installed.Id} {installed.Version}, but it has no CUDA execution provider (providers: {string.Join(", ", providers)}). Reinstall: `tessera plugin install cuda --force`.";
        var why = Environment.GetEnvironmentVariable("TESSERA_ONNXRUNTIME") is { Length: > 0 } chosen
            ? $"TESSERA_ONNXRUNTIME={chosen} chose another library"
            : !File.Exists(library)
                ? $"{library} is missing (reinstall: `tessera plugin install cuda --force`)"
                : NotLoadableWhy(installed);
        return $"{native} holds {installed.Id} {installed.Version}, but this process loaded {loaded}: {why}.";
    }

    private static string NotLoadableWhy(Package installed)
    {
        var managed = OrtNativeApi.ManagedVersion;
        if (!Version.TryParse(installed.Version, out var v) || v.Major != managed.Major || v.Minor != managed.Minor)
            return $"its version {installed.Version} is not this tessera's ONNX Runtime {managed.Major}.{managed.Minor} (reinstall: `tessera plugin install cuda --force`)";
        return "the host uses a plugin's installed native only when the configuration names none (onnxRuntimePath) and no onnxruntime was loaded before; " +
               "an application that uses ONNX Runtime before creating the engine must call NativeOnnxRuntime.Use with it first";
    }
}
