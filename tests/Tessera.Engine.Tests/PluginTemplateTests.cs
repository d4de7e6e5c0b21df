using System.Diagnostics;

namespace Tessera.Engine.Tests;

/// <summary>The vendor kit end to end: pack the contract, create a plugin from the template, build it, verify it.</summary>
[TestClass]
public sealed class PluginTemplateTests
{
    /// <summary>
    /// Packages restored during the test go to a folder of its own (deleted after), with the machine's global cache as a
    /// read-only fallback: ONNX Runtime comes from there, and the per-run contract package never lands in it.
    /// </summary>
    private static string? _packages;

    private static string GlobalPackages => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
        ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static (int Code, string Output) Run(string file, string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (_packages is not null)
        {
            psi.Environment["NUGET_PACKAGES"] = _packages;
            psi.Environment["RestoreAdditionalProjectFallbackFolders"] = GlobalPackages;
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(4))) { p.Kill(entireProcessTree: true); return (-1, "timed out"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [TestMethod]
    public void APluginCreatedFromTheTemplateBuildsLoadsAndVerifies()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            // A contract package with a version of its own, so NuGet's global cache never serves a stale copy.
            _packages = Directory.CreateDirectory(Path.Combine(dir, "packages")).FullName;
            var feed = Directory.CreateDirectory(Path.Combine(dir, "feed")).FullName;
            var version = $"1.0.{DateTime.UtcNow.Ticks / TimeSpan.TicksPerSecond % 1_000_000_000}";
            // The contract package built on its own, from a copy of its folder outside the repo (as a vendor gets it):
            // nothing of the repo's build is reachable from there, so it cannot import the TorchSharp targets.
            var contract = Directory.CreateDirectory(Path.Combine(dir, "Tessera.Abstractions")).FullName;
            var source = Path.Combine(TestPaths.RepoRoot, "engine", "Tessera.Abstractions");
            foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(contract, Path.GetFileName(f)));
            var (code, output) = Run("dotnet", contract, "pack", "-c", "Release", "-o", feed, $"-p:Version={version}", "-nologo", "-v", "q");
            Assert.AreEqual(0, code, output);
            Assert.IsTrue(File.Exists(Path.Combine(feed, $"Tessera.Abstractions.{version}.nupkg")), output);

            var hive = Path.Combine(dir, "hive");
            (code, output) = Run("dotnet", dir, "new", "install", Path.Combine(TestPaths.RepoRoot, "templates", "tessera-plugin"), "--debug:custom-hive", hive);
            Assert.AreEqual(0, code, output);
            (code, output) = Run("dotnet", dir, "new", "tessera-plugin", "-n", "Acme.Npu", "--kind", "npu", "--vendor", "Acme", "--debug:custom-hive", hive);
            Assert.AreEqual(0, code, output);
            var project = Path.Combine(dir, "Acme.Npu");
            // The documented command, on the nuget.config the template ships.
            Assert.IsTrue(File.Exists(Path.Combine(project, "nuget.config")), "the template ships a nuget.config");
            (code, output) = Run("dotnet", project, "nuget", "add", "source", feed, "-n", "tessera-local", "--configfile", "nuget.config");
            Assert.AreEqual(0, code, output);
            (code, output) = Run("dotnet", project, "build", "-c", "Release", "-nologo", "-v", "q");
            Assert.AreEqual(0, code, output);

            var bin = Path.Combine(project, "bin", "Release", "net10.0");
            Assert.IsFalse(File.Exists(Path.Combine(bin, "Tessera.Abstractions.dll")), "the contract is not shipped with the plugin");
            (code, output) = Run("dotnet", dir, TestPaths.CliDll, "plugin", "verify", bin, "--no-models");
            Assert.AreEqual(0, code, output);
            StringAssert.Contains(output, "plugin npu 0.1 by Acme: contract 1.0 ok");
            StringAssert.Contains(output, "PASS:");
        }
        finally
        {
            _packages = null;
            Directory.Delete(dir, recursive: true);
        }
    }
}
