using System.Diagnostics;
using Tessera.Engine;
using Tessera.TestSupport;

namespace Tessera.Export.Tests;

/// <summary>Paths, processes (the built tessera, Debian's python3 with torch) and engines for the export tests.</summary>
internal static class TestSupport
{
    public static string RepoRoot => TestPaths.RepoRoot;

    public static string CliDll => TestPaths.CliDll;

    /// <summary>Debian's interpreter, where python3-torch is installed (a pyenv python3 earlier on PATH has no torch).</summary>
    public static string Python => File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    public static string ReferenceScript => Path.Combine(AppContext.BaseDirectory, "Reference", "hf_decoder.py");

    public static string NewTempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tessera-export-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args, int timeoutMs = 120_000)
    {
        var o = TestProcess.Run(file, args, TimeSpan.FromMilliseconds(timeoutMs));
        if (o.TimedOut) Assert.Fail($"{file} {string.Join(" ", args)} did not finish within {timeoutMs / 1000} s");
        return (o.Code, o.Out, o.Err);
    }

    public static (int Code, string Out, string Err) Tessera(params string[] args) => Run("dotnet", [CliDll, .. args]);

    /// <summary>Writes a random checkpoint in Hugging Face's layout and PyTorch's reference outputs for it.</summary>
    public static string WriteCheckpoint(string root, string arch, string format, int seed = 0)
    {
        var dir = Path.Combine(root, $"{arch}-{format}");
        var (code, stdout, stderr) = Run(Python, [ReferenceScript, "--arch", arch, "--format", format, "--out", dir, "--seed", seed.ToString()]);
        Assert.AreEqual(0, code, $"reference script failed (is python3-torch installed?):\n{stdout}\n{stderr}");
        return dir;
    }

    /// <summary>An engine over the CPU plugin deployed beside the tests only, with a private cache.</summary>
    public static TesseraEngine Engine(string cacheDir) => new(TestPaths.Options(cacheDir, TestPaths.Fixture("cpu")));
}
