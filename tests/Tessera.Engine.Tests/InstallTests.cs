using System.Diagnostics;

namespace Tessera.Engine.Tests;

/// <summary>
/// Tessera installed the way a .NET user installs it: scripts/pack.sh into a local feed, `dotnet tool install` from
/// it, and the commands run from an empty folder — the inference install small and free of TorchSharp/libtorch, the
/// tools verbs handed to the tools install when it is on PATH and explained when it is not.
/// </summary>
[TestClass]
public sealed class InstallTests
{
    private const long InferenceInstallLimitBytes = 200L * 1024 * 1024;

    [TestMethod]
    [Timeout(900_000)]
    public void PackedToolsInstallAndRunFromAnEmptyFolder()
    {
        var work = TestPaths.NewTempDir();
        try
        {
            var feed = Path.Combine(work, "feed");
            var pack = Run("bash", [Path.Combine(TestPaths.RepoRoot, "scripts", "pack.sh"), feed], TestPaths.RepoRoot, timeoutMs: 600_000);
            Assert.AreEqual(0, pack.Code, pack.Output);
            foreach (var id in new[] { "Tessera.Abstractions", "Tessera.Engine", "Tessera.Pipeline", "Tessera.Export", "Tessera.Cli", "Tessera.Tools" })
                Assert.IsTrue(Directory.GetFiles(feed, id + ".*.nupkg").Length > 0, $"{id} was packed: {pack.Output}");

            // A private package folder: installing from the feed must not add to (or be served stale copies from) the
            // user's NuGet cache.
            var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(work, "nuget") };
            var inference = Path.Combine(work, "inference");
            var tools = Path.Combine(work, "tools");
            foreach (var (id, path) in new[] { ("Tessera.Cli", inference), ("Tessera.Tools", tools) })
            {
                var install = Run("dotnet", ["tool", "install", id, "--tool-path", path, "--add-source", feed, "--version", "0.5.0"], work, env, 600_000);
                Assert.AreEqual(0, install.Code, install.Output);
            }

            var files = Directory.GetFiles(inference, "*", SearchOption.AllDirectories);
            var size = files.Sum(f => new FileInfo(f).Length);
            Assert.IsTrue(size < InferenceInstallLimitBytes, $"the inference install is {size / (1024.0 * 1024):F0} MB; it must stay under 200 MB");
            var torch = files.Where(f => Path.GetFileName(f).Contains("torch", StringComparison.OrdinalIgnoreCase)).ToArray();
            Assert.AreEqual(0, torch.Length, "no TorchSharp or libtorch file in the inference install: " + string.Join(", ", torch));
            // The GPU onnxruntime is installed into the cuda plugin when wanted (tessera plugin install cuda), never shipped.
            Assert.IsTrue(files.Any(f => f.EndsWith("/plugins/cuda/native-package.json", StringComparison.Ordinal)), "the cuda plugin says what it can install");
            var gpu = files.Where(f => Path.GetFileName(f).StartsWith("libonnxruntime_providers_cuda", StringComparison.Ordinal) || f.Contains("/plugins/cuda/native/", StringComparison.Ordinal)).ToArray();
            Assert.AreEqual(0, gpu.Length, "no GPU onnxruntime in the base install: " + string.Join(", ", gpu));

            var empty = Path.Combine(work, "empty");
            Directory.CreateDirectory(empty);
            var tessera = Path.Combine(inference, "tessera");
            // Only the inference install on PATH (plus dotnet): no tools install anywhere it would look.
            var noTools = new Dictionary<string, string>(env) { ["PATH"] = $"{inference}:{DotnetDirectory()}:/usr/bin:/bin" };

            var devices = Run(tessera, ["devices", "--json"], empty, noTools);
            Assert.AreEqual(0, devices.Code, devices.Output);
            StringAssert.Contains(devices.Stdout, "\"cpu:0\"");

            var generate = Run(tessera, ["generate", "the word \"MOON\" in red on a yellow background", "-o", "moon.png", "--seed", "1"], empty, noTools);
            Assert.AreEqual(0, generate.Code, generate.Output);
            var png = File.ReadAllBytes(Path.Combine(empty, "moon.png"));
            CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png.Take(4).ToArray(), "a PNG from the packaged default model");
            CollectionAssert.AreEqual(new[] { "moon.png" }, Directory.GetFileSystemEntries(empty).Select(Path.GetFileName).ToArray(),
                "only the image in the folder (no onnxruntime_profile__* or other files)");

            var missing = Run(tessera, ["train", "vq", "--help"], empty, noTools);
            Assert.AreEqual(1, missing.Code, missing.Output);
            StringAssert.Contains(missing.Stderr, "tools install");
            StringAssert.Contains(missing.Stderr, "dotnet tool install --global Tessera.Tools");

            var withTools = new Dictionary<string, string>(noTools) { ["PATH"] = $"{tools}:{noTools["PATH"]}" };
            var handed = Run(tessera, ["train", "vq", "--help"], empty, withTools);
            Assert.AreEqual(0, handed.Code, handed.Output);
            StringAssert.Contains(handed.Stdout, "--config", "the tools install's train help");
            CollectionAssert.AreEqual(new[] { "moon.png" }, Directory.GetFileSystemEntries(empty).Select(Path.GetFileName).ToArray());
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The folder of the `dotnet` on PATH (the installed tools' apphosts and the SDK need it).</summary>
    private static string DotnetDirectory() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "dotnet"))) ?? "/usr/share/dotnet";

    private sealed record Result(int Code, string Stdout, string Stderr)
    {
        public string Output => $"exit {Code}\n{Stdout}\n{Stderr}";
    }

    private static Result Run(string file, string[] args, string cwd, IReadOnlyDictionary<string, string>? env = null, int timeoutMs = 120_000)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment.Remove("TESSERA_TOOLS");
        psi.Environment.Remove("TESSERA_MODEL");
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish within {timeoutMs / 1000} s");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
