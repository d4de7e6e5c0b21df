namespace Tessera.Engine.Plugins;

/// <summary>Finds candidate plugin assemblies in the configured folders.</summary>
internal static class PluginDiscovery
{
    /// <summary>One place a plugin should be: its main assembly, or the folder when none could be chosen (with why).</summary>
    public sealed record Candidate(string Folder, string? AssemblyPath, string? Problem);

    /// <summary>
    /// A folder is a plugin folder when it holds a <c>*.deps.json</c> or <c>*.dll</c> directly; otherwise each of
    /// its subfolders is taken as one plugin folder. Missing folders yield nothing (they are reported separately).
    /// </summary>
    public static List<Candidate> Find(string root)
    {
        var found = new List<Candidate>();
        if (!Directory.Exists(root)) return found;
        if (IsPluginFolder(root))
        {
            found.Add(Choose(root));
            return found;
        }
        foreach (var sub in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            found.Add(Choose(sub));
        return found;
    }

    private static bool IsPluginFolder(string dir) =>
        Directory.EnumerateFiles(dir, "*.deps.json").Any() || Directory.EnumerateFiles(dir, "*.dll").Any();

    /// <summary>The main assembly: <c>X.dll</c> beside <c>X.deps.json</c>; else the one dll that is a Tessera plugin.</summary>
    private static Candidate Choose(string folder)
    {
        var depsFiles = Directory.GetFiles(folder, "*.deps.json");
        var mains = depsFiles
            .Select(d => Path.Combine(folder, Path.GetFileName(d)[..^".deps.json".Length] + ".dll"))
            .Where(File.Exists)
            .ToList();
        if (mains.Count == 1) return new Candidate(folder, mains[0], null);

        var dlls = Directory.GetFiles(folder, "*.dll");
        if (dlls.Length == 0)
            return new Candidate(folder, null, "the folder holds no plugin assembly (*.dll). Build the plugin into it, or remove the folder.");
        if (dlls.Length == 1) return new Candidate(folder, dlls[0], null);
        var plugins = dlls.Where(PluginAssemblyInspector.LooksLikePlugin).ToList();
        return plugins.Count == 1
            ? new Candidate(folder, plugins[0], null)
            : new Candidate(folder, null, plugins.Count == 0
                ? "none of the assemblies in the folder is a Tessera plugin (none references Tessera.Abstractions)."
                : $"the folder holds {plugins.Count} plugin assemblies ({string.Join(", ", plugins.Select(Path.GetFileName))}); put each plugin in its own folder.");
    }
}
