using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;

namespace Tessera.Engine;

/// <summary>
/// Which native onnxruntime the process uses. The host ships the NuGet CPU build; an operator with a CUDA or CANN
/// build points <c>$TESSERA_ONNXRUNTIME</c> (or <c>onnxRuntimePath</c> in the engine configuration) at its
/// libonnxruntime.so, and the host loads that one instead, once, before anything else touches ONNX Runtime. Plugins
/// share it (one native onnxruntime per process).
/// <para>
/// When neither names a library, a native installed into a plugin folder (<c>&lt;plugin&gt;/native/onnxruntime.json</c>,
/// written by <c>tessera plugin install cuda</c>) is used: the first one in plugin search order whose version is the
/// managed package's major.minor. <c>TESSERA_ONNXRUNTIME=packaged</c> keeps the packaged CPU build.
/// </para>
/// </summary>
public static class NativeOnnxRuntime
{
    public const string Variable = "TESSERA_ONNXRUNTIME";

    /// <summary>Value of <see cref="Variable"/> that keeps the packaged CPU build even when a plugin installed another.</summary>
    public const string Packaged = "packaged";

    /// <summary>Receipt a plugin's installed native carries: <c>&lt;plugin&gt;/native/onnxruntime.json</c>.</summary>
    public const string InstalledReceipt = "native/onnxruntime.json";
    private static readonly object Gate = new();
    private static string? _chosen;

    /// <summary>The library chosen with <see cref="Use"/>, or null for the packaged one.</summary>
    public static string? Chosen => _chosen;

    /// <summary>
    /// Makes ONNX Runtime's managed package load <paramref name="path"/>. Must run before the first ONNX Runtime call;
    /// asking for a different library later is an error that says so.
    /// </summary>
    public static void Use(string path)
    {
        path = Path.GetFullPath(path);
        lock (Gate)
        {
            if (_chosen == path) return;
            if (_chosen is not null)
                throw new InvalidOperationException($"This process already uses the native onnxruntime {_chosen}; it cannot switch to {path}. Run a separate process.");
            if (!File.Exists(path))
                throw new FileNotFoundException($"{Variable} / onnxRuntimePath is '{path}', which does not exist. Point it at a libonnxruntime.so (e.g. a CUDA or CANN build).", path);
            Tessera.Abstractions.InputFiles.RequireRegularFile(path, $"{Variable} / onnxRuntimePath", Tessera.Abstractions.InputFiles.MaxOnnxBytes);
            // Load it now, so a wrong file is one clear error here rather than a crash inside the first ONNX Runtime call.
            if (!NativeLibrary.TryLoad(path, out var handle))
                throw new InvalidDataException($"{Variable} / onnxRuntimePath is '{path}', which is not a loadable shared library for this machine. Point it at a libonnxruntime.so (e.g. a CUDA or CANN build).");
            if (!NativeLibrary.TryGetExport(handle, "OrtGetApiBase", out _))
            {
                NativeLibrary.Free(handle);
                throw new InvalidDataException($"{Variable} / onnxRuntimePath is '{path}', a shared library without OrtGetApiBase, so it is not ONNX Runtime. Point it at a libonnxruntime.so.");
            }
            try
            {
                NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly, (name, _, _) =>
                    name is "onnxruntime" or "libonnxruntime" or "libonnxruntime.so" ? handle : IntPtr.Zero);
            }
            catch (InvalidOperationException)
            {
                throw new InvalidOperationException($"ONNX Runtime's library resolver was already set in this process; {Variable} must be applied before ONNX Runtime is first used.");
            }
            _chosen = path;
        }
    }

    /// <summary>
    /// Applies <see cref="EngineOptions.OnnxRuntimePath"/>, else <c>$TESSERA_ONNXRUNTIME</c>, when either is set; else a
    /// plugin's installed native (<see cref="FindInstalled"/>) when this process has not loaded an onnxruntime yet.
    /// </summary>
    public static void Apply(EngineOptions options)
    {
        var path = options.OnnxRuntimePath ?? Environment.GetEnvironmentVariable(Variable);
        if (string.Equals(path, Packaged, StringComparison.OrdinalIgnoreCase)) return;
        if (!string.IsNullOrEmpty(path))
        {
            Use(path);
            return;
        }
        if (_chosen is not null) return;
        var installed = FindInstalled(options.ResolvePluginDirectories().Select(d => d.Path), out var notes);
        lock (Gate) _notes.AddRange(notes);
        if (installed is null) return;
        var already = LoadedOnnxRuntimes().Where(l => l != installed).ToList();
        if (already.Count > 0)
        {
            lock (Gate) _notes.Add($"{installed} is installed, but this process already loaded {string.Join(", ", already)}; it is used by a new process.");
            return;
        }
        try { Use(installed); }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException or IOException)
        {
            lock (Gate) _notes.Add($"{installed} was not used: {e.Message}");
        }
    }

    private static readonly List<string> _notes = [];

    /// <summary>Why a plugin's installed native was passed over (wrong version, already loaded onnxruntime, not loadable).</summary>
    public static IReadOnlyList<string> Notes { get { lock (Gate) return _notes.ToList(); } }

    /// <summary>
    /// The first native onnxruntime installed into a plugin folder under <paramref name="pluginDirectories"/> (each a
    /// plugin folder or a folder of plugin folders, as for plugin discovery) whose receipt names a library that exists
    /// and a version with the managed package's major.minor (one C API); null when there is none.
    /// </summary>
    public static string? FindInstalled(IEnumerable<string> pluginDirectories, out List<string> notes)
    {
        notes = [];
        var managed = ManagedVersion;
        foreach (var root in pluginDirectories)
        {
            if (!Directory.Exists(root)) continue;
            var folders = File.Exists(Path.Combine(root, InstalledReceipt)) || Directory.EnumerateFiles(root, "*.dll").Any()
                ? new[] { root }
                : Directory.GetDirectories(root).Order(StringComparer.Ordinal).ToArray();
            foreach (var folder in folders)
            {
                var receipt = Path.Combine(folder, InstalledReceipt);
                if (!File.Exists(receipt)) continue;
                string library, version;
                try
                {
                    using var doc = JsonDocument.Parse(File.ReadAllText(receipt));
                    library = doc.RootElement.GetProperty("library").GetString() ?? throw new InvalidDataException("no library");
                    version = doc.RootElement.GetProperty("version").GetString() ?? throw new InvalidDataException("no version");
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException or IOException)
                {
                    notes.Add($"{receipt} is not a valid install receipt ({e.Message}); reinstall with `tessera plugin install <plugin> --force`.");
                    continue;
                }
                var path = Path.GetFullPath(Path.Combine(folder, "native", library));
                if (Path.GetDirectoryName(path) != Path.GetFullPath(Path.Combine(folder, "native")) || !File.Exists(path))
                {
                    notes.Add($"{receipt} names {library}, which is not in {Path.Combine(folder, "native")}; reinstall with `tessera plugin install <plugin> --force`.");
                    continue;
                }
                if (!Version.TryParse(version, out var v) || v.Major != managed.Major || v.Minor != managed.Minor)
                {
                    notes.Add($"{path} is ONNX Runtime {version}, but this tessera's managed ONNX Runtime is {managed}; they must be the same release ({managed.Major}.{managed.Minor}.x). Reinstall with `tessera plugin install <plugin> --force`.");
                    continue;
                }
                return path;
            }
        }
        return null;
    }

    /// <summary>The managed package's version (Microsoft.ML.OnnxRuntime assembly), e.g. 1.31.1.</summary>
    public static Version ManagedVersion
    {
        get
        {
            var info = typeof(OrtEnv).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
            return info is not null && Version.TryParse(info.Split('+', '-')[0], out var v) ? v : typeof(OrtEnv).Assembly.GetName().Version!;
        }
    }

    /// <summary>Paths of every libonnxruntime.so mapped into this process (Linux; empty elsewhere).</summary>
    public static IReadOnlyList<string> LoadedOnnxRuntimes()
    {
        if (!File.Exists("/proc/self/maps")) return [];
        return File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length == 6 && f[5].Trim().StartsWith('/'))
            .Select(f => f[5].Trim())
            .Where(p => Path.GetFileName(p) is "libonnxruntime.so" or "libonnxruntime.so.1")
            .Distinct().ToList();
    }
}
