using System.Reflection;
using Tessera.Engine;

namespace Tessera.TestSupport;

/// <summary>Where the deployed fixture plugins, the repo and the built CLI are; and engines over chosen plugin folders.</summary>
public static class TestPaths
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Fixture(string name) => Path.Combine(Fixtures, name);

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("Engine.sln not found above the test folder.");
        }
    }

    public static string Configuration =>
        typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "TesseraConfiguration").Value!;

    /// <summary>The built `tessera` (tessera.dll, run with dotnet).</summary>
    public static string CliDll => Path.Combine(RepoRoot, "engine", "Tessera.Cli", "bin", Configuration, "net10.0", "tessera.dll");

    /// <summary>A new empty temporary folder, deleted by the caller's cleanup.</summary>
    public static string NewTempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tessera-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Engine options that search only the given folders (no default folder, no environment) with a private cache.</summary>
    public static EngineOptions Options(string cacheDir, params string[] pluginDirs)
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = cacheDir };
        o.PluginDirectories.AddRange(pluginDirs);
        return o;
    }
}
