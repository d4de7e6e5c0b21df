using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Tessera.Engine.Tests;

/// <summary>
/// The vendor kit end to end, as a vendor meets it: the command block of docs/writing-a-plugin.md, run as it stands
/// by bash in an empty folder outside the repo (its HOME), for both starting points of the template. Only the line
/// that says where the clone is changes; <c>tessera</c> is the CLI built here.
/// </summary>
[TestClass]
public sealed partial class PluginTemplateTests
{
    private static string GlobalPackages => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
        ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The fenced bash block after the vendor-kit-commands marker in docs/writing-a-plugin.md.</summary>
    private static string DocumentedCommands()
    {
        var doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "writing-a-plugin.md"));
        var m = CommandBlock().Match(doc);
        Assert.IsTrue(m.Success, "docs/writing-a-plugin.md has a ```bash block after <!-- vendor-kit-commands -->");
        return m.Groups[1].Value;
    }

    [GeneratedRegex(@"<!-- vendor-kit-commands -->\s*```bash\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CommandBlock();

    /// <summary>Files of the folders the documented packs build, with their write times (they must stay as they are).</summary>
    private static Dictionary<string, DateTime> Snapshot(params string[] folders) => folders
        .SelectMany(f => Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, f), "*", SearchOption.AllDirectories))
        .ToDictionary(f => f, File.GetLastWriteTimeUtc);

    private static string[] TesseraPackagesIn(string packages) => Directory.Exists(packages)
        ? Directory.GetDirectories(packages, "tessera.*").Select(Path.GetFileName).OfType<string>().Order().ToArray() : [];

    /// <summary>Runs the documented block with HOME in a new temporary folder; returns the folder, the exit code and the output.</summary>
    private static (string Home, int Code, string Output) RunDocumentedCommands(string runtime, string extra = "")
    {
        var commands = DocumentedCommands();
        var clone = new Regex(@"^TESSERA=.*$", RegexOptions.Multiline);
        Assert.IsTrue(clone.IsMatch(commands), "the block says where the clone is with a TESSERA= line");
        commands = clone.Replace(commands, $"TESSERA='{TestPaths.RepoRoot.TrimEnd('/')}'", 1);
        if (runtime != "onnxruntime")
        {
            Assert.IsTrue(commands.Contains("--runtime onnxruntime"), "the block names the starting point with --runtime");
            commands = commands.Replace("--runtime onnxruntime", $"--runtime {runtime}");
        }
        var home = TestPaths.NewTempDir();
        var script = Path.Combine(home, "vendor-kit.sh");
        // `tessera` is the CLI built in this repo (a vendor has it installed).
        File.WriteAllText(script, $"set -euo pipefail\nexec 2>&1\ntessera() {{ dotnet '{TestPaths.CliDll}' \"$@\"; }}\nset -x\n{commands}\n{extra}\n");
        var psi = new ProcessStartInfo("bash", [script]) { WorkingDirectory = home, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["HOME"] = home; // so ~/tessera-feed, ~/src and the template hive are the test's own
        psi.Environment["DOTNET_CLI_HOME"] = home;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1"; // no build nodes outlive the test
        // Restored packages land in a folder of the test's own (deleted after); the machine's global cache is only a
        // read-only fallback, so ONNX Runtime comes from there and nothing is added to it.
        psi.Environment["NUGET_PACKAGES"] = Path.Combine(home, "packages");
        psi.Environment["RestoreAdditionalProjectFallbackFolders"] = GlobalPackages;
        psi.Environment["TESSERA_CACHE_DIR"] = Path.Combine(home, "cache");
        psi.Environment.Remove("TESSERA_PLUGIN_PATH");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(9))) { p.Kill(entireProcessTree: true); p.WaitForExit(); return (home, -1, "timed out\n" + stdout.Result + stderr.Result); }
        return (home, p.ExitCode, stdout.Result + "\n" + stderr.Result);
    }

    private static void AssertKitLeavesNoTrace(Dictionary<string, DateTime> before, string[] globalBefore, string home)
    {
        var after = Snapshot("engine/Tessera.Abstractions", "plugins/common/OnnxRuntime", "templates/tessera-plugin");
        CollectionAssert.AreEquivalent(before.Keys.ToList(), after.Keys.ToList(), "the documented packs write nothing into the clone");
        foreach (var (file, time) in before) Assert.AreEqual(time, after[file], $"{file} was rewritten");
        CollectionAssert.AreEqual(globalBefore, TesseraPackagesIn(GlobalPackages), "the machine's global NuGet cache gained no Tessera package");
        Assert.IsTrue(TesseraPackagesIn(Path.Combine(home, "packages")).Contains("tessera.abstractions"), "the contract was restored into the private packages folder");
    }

    [TestMethod]
    public void TheDocumentedCommandsBuildTheOnnxRuntimeStartingPointOutsideTheRepoAndItPassesVerify()
    {
        var before = Snapshot("engine/Tessera.Abstractions", "plugins/common/OnnxRuntime", "templates/tessera-plugin");
        var globalBefore = TesseraPackagesIn(GlobalPackages);
        // Beyond the documented allow: on the CPU EP as generated, it also runs every case alone (strict).
        var (home, code, output) = RunDocumentedCommands("onnxruntime", "tessera plugin verify bin/Release/net10.0 --no-models");
        try
        {
            Assert.AreEqual(0, code, output);
            var project = Path.Combine(home, "src", "Acme.Npu");
            Assert.IsTrue(File.Exists(Path.Combine(project, "nuget.config")), "the template ships a nuget.config");
            Assert.IsFalse(Directory.EnumerateFiles(project, "OrtDevice.cs", SearchOption.AllDirectories).Any(), "the backend is a package, not copied sources");
            StringAssert.Contains(File.ReadAllText(Path.Combine(project, "Acme.Npu.csproj")), "<PackageReference Include=\"Tessera.Plugins.OnnxRuntime\"");
            var bin = Path.Combine(project, "bin", "Release", "net10.0");
            Assert.IsTrue(File.Exists(Path.Combine(bin, "Tessera.Plugins.OnnxRuntime.dll")), "the backend ships with the plugin");
            Assert.IsFalse(File.Exists(Path.Combine(bin, "Tessera.Abstractions.dll")), "the contract is not shipped with the plugin");
            Assert.IsFalse(File.Exists(Path.Combine(bin, "Microsoft.ML.OnnxRuntime.dll")), "ONNX Runtime's managed API is the host's");
            StringAssert.Contains(output, "plugin npu 0.1 by Acme: contract 1.0 ok");
            StringAssert.Contains(output, "contract.unsupported-reported");
            Assert.IsFalse(Regex.IsMatch(output, @"\bFAIL\b"), output);
            AssertKitLeavesNoTrace(before, globalBefore, home);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [TestMethod]
    public void TheDocumentedCommandsBuildTheCustomRuntimeStartingPointWhichNamesWhatItCannotRunAndPassesVerifyUnderAllow()
    {
        var before = Snapshot("engine/Tessera.Abstractions", "plugins/common/OnnxRuntime", "templates/tessera-plugin");
        var globalBefore = TesseraPackagesIn(GlobalPackages);
        // Under strict its reference kernels cannot run Softmax: verify must fail and name the node.
        var (home, code, output) = RunDocumentedCommands("custom",
            "if tessera plugin verify bin/Release/net10.0 --no-models; then echo 'STRICT VERIFY PASSED'; else echo \"STRICT VERIFY EXIT $?\"; fi");
        try
        {
            Assert.AreEqual(0, code, output);
            var project = Path.Combine(home, "src", "Acme.Npu");
            Assert.IsTrue(File.Exists(Path.Combine(project, "nuget.config")), "the template ships a nuget.config");
            Assert.IsFalse(File.ReadAllText(Path.Combine(project, "Acme.Npu.csproj")).Contains("OnnxRuntime"), "the custom starting point references no ONNX Runtime");
            var bin = Path.Combine(project, "bin", "Release", "net10.0");
            Assert.IsFalse(Directory.EnumerateFiles(bin, "*OnnxRuntime*").Any(), "nothing of ONNX Runtime ships with it");
            Assert.IsFalse(File.Exists(Path.Combine(bin, "Tessera.Abstractions.dll")), "the contract is not shipped with the plugin");

            var (allow, strict) = SplitAt(output, "STRICT VERIFY");
            StringAssert.Contains(allow, "plugin npu 0.1 by Acme: contract 1.0 ok");
            // The documented verify (under allow, with the shipped model) passed: the exit code said so; every case is listed.
            foreach (var c in new[] { "contract.unsupported-reported", "contract.strict-refuses", "contract.external-data", "op.softmax", "model." })
                StringAssert.Contains(allow, c);
            StringAssert.Contains(strict, "STRICT VERIFY EXIT 1", "strict verify fails: the kernels do not run Softmax alone");
            StringAssert.Matches(strict, new Regex(@"op\.softmax\s+FAIL.*Softmax"), "the strict failure names the Softmax node");
            AssertKitLeavesNoTrace(before, globalBefore, home);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    private static (string Before, string After) SplitAt(string text, string marker)
    {
        // The strict run is the second "plugin npu" header in the output.
        int second = text.IndexOf("plugin npu 0.1", text.IndexOf("plugin npu 0.1", StringComparison.Ordinal) + 1, StringComparison.Ordinal);
        Assert.IsTrue(second > 0 && text.Contains(marker), text);
        return (text[..second], text[second..]);
    }
}
