extern alias cuda;
using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using Tessera.Abstractions;
using Tessera.Engine.Plugins;
using cuda::Tessera.Plugins.Cuda;

namespace Tessera.Engine.Tests;

/// <summary>
/// The CUDA plugin's GPU native from NuGet, on a machine without a GPU: the base install does not carry it,
/// `tessera plugin install cuda` puts it into the plugin folder with a receipt, the host then loads it (one native
/// onnxruntime per process), and cuda:0 names the first CUDA library the machine lacks.
/// </summary>
[TestClass]
public sealed class CudaNativeTests
{
    private const string GpuPackage = "Microsoft.ML.OnnxRuntime.Gpu.Linux";

    /// <summary>What the CUDA provider of the GPU package 1.31.0 loads, in load order (written here from `readelf -d`, not taken from the plugin).</summary>
    private static readonly string[] ProviderNeeds = ["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcudnn.so.9"];

    private static string PackagedOnnxRuntime => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime.so");

    [TestMethod]
    public void TheCudaPluginShipsWhatToInstallButNotTheGpuNative()
    {
        var plugin = TestPaths.Fixture("cuda");
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(plugin, "native-package.json")))!;
        Assert.AreEqual(GpuPackage, manifest["package"]!.GetValue<string>());
        var version = Version.Parse(manifest["version"]!.GetValue<string>());
        var managed = NativeOnnxRuntime.ManagedVersion;
        Assert.AreEqual((managed.Major, managed.Minor), (version.Major, version.Minor), "the GPU native must be the managed package's release (one C API)");
        CollectionAssert.Contains(manifest["files"]!.AsArray().Select(f => f!.GetValue<string>()).ToList(), "libonnxruntime_providers_cuda.so");

        // The built plugin carries no native onnxruntime and does not depend on the GPU package.
        var natives = Directory.GetFiles(plugin, "*.so*", SearchOption.AllDirectories);
        Assert.AreEqual(0, natives.Length, "no native library in the cuda plugin as built: " + string.Join(", ", natives));
        Assert.IsFalse(Directory.Exists(Path.Combine(plugin, "native")));
        StringAssert.DoesNotMatch(File.ReadAllText(Path.Combine(plugin, "Tessera.Plugins.Cuda.deps.json")), new System.Text.RegularExpressions.Regex("OnnxRuntime\\.Gpu"));

        // The CLI's deployed cuda plugin is the same (its native/ only appears when someone ran plugin install).
        var cli = Path.Combine(Path.GetDirectoryName(TestPaths.CliDll)!, "plugins", "cuda");
        Assert.IsTrue(File.Exists(Path.Combine(cli, "native-package.json")), cli);
        Assert.AreEqual(0, Directory.GetFiles(cli, "*.so*", SearchOption.TopDirectoryOnly).Length);
        // The base install's onnxruntime is the CPU build: it has no CUDA provider library beside it.
        Assert.IsFalse(File.Exists(Path.Combine(Path.GetDirectoryName(TestPaths.CliDll)!, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so")));
    }

    [TestMethod]
    public void InstallingFromANupkgPutsTheLibrariesAndAReceiptIntoNativeAndRefusesTheWrongPackage()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var plugin = StagePlugin(dir);
            var files = FakeNativeFiles();
            var nupkg = WriteNupkg(Path.Combine(dir, "gpu.nupkg"), GpuPackage, "1.31.0", files);

            var r = PluginNativeInstaller.Install(plugin, nupkg);
            Assert.IsFalse(r.AlreadyInstalled);
            var native = Path.Combine(plugin, "native");
            Assert.AreEqual(Path.Combine(native, "libonnxruntime.so"), r.Library);
            var receipt = JsonNode.Parse(File.ReadAllText(Path.Combine(native, "onnxruntime.json")))!;
            Assert.AreEqual(GpuPackage, receipt["package"]!.GetValue<string>());
            Assert.AreEqual("1.31.0", receipt["version"]!.GetValue<string>());
            foreach (var name in new[] { "libonnxruntime.so", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so" })
            {
                CollectionAssert.AreEqual(files[name], File.ReadAllBytes(Path.Combine(native, name)), name);
                Assert.AreEqual(Convert.ToHexString(SHA256.HashData(files[name])).ToLowerInvariant(), receipt["files"]![name]!["sha256"]!.GetValue<string>());
            }
            Assert.IsTrue(File.Exists(Path.Combine(native, "LICENSE")), "the package's licence goes with its libraries");
            Assert.IsFalse(File.Exists(Path.Combine(native, "libonnxruntime_providers_tensorrt.so")), "only the files the manifest names");
            Assert.AreEqual(0, Directory.GetDirectories(plugin, ".native*").Length, "no staging folder left behind");

            // Installed: a second install without --force touches nothing (and needs no network).
            var again = PluginNativeInstaller.Install(plugin);
            Assert.IsTrue(again.AlreadyInstalled);

            // The wrong package or version is refused, and the install in place is kept.
            var wrong = WriteNupkg(Path.Combine(dir, "old.nupkg"), GpuPackage, "1.30.0", files);
            var e = Assert.ThrowsExactly<TesseraException>(() => PluginNativeInstaller.Install(plugin, wrong, force: true));
            StringAssert.Contains(e.Message, $"is {GpuPackage} 1.30.0, but the cuda plugin needs {GpuPackage} 1.31.0");
            Assert.IsTrue(PluginNativeInstaller.IsInstalled(native, PluginNativeInstaller.ReadManifest(plugin)) is > 0);

            // FindPluginFolder finds the plugin by the name in its manifest, and says where it looked otherwise.
            Assert.AreEqual(plugin, PluginNativeInstaller.FindPluginFolder("cuda", [dir]));
            var missing = Assert.ThrowsExactly<TesseraException>(() => PluginNativeInstaller.FindPluginFolder("ascend", [dir]));
            StringAssert.Contains(missing.Message, dir);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    [Timeout(300_000)]
    public void InstallingThroughNuGetRestoresThePackageFromTheGivenFeedOnly()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            // A package id that exists on no public feed, so only the local feed can answer.
            const string id = "Tessera.Test.FakeGpuNative";
            var plugin = StagePlugin(dir);
            var manifestPath = Path.Combine(plugin, "native-package.json");
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
            manifest["package"] = id;
            File.WriteAllText(manifestPath, manifest.ToJsonString());
            var feed = Path.Combine(dir, "feed");
            Directory.CreateDirectory(feed);
            var files = FakeNativeFiles();
            WriteNupkg(Path.Combine(feed, $"{id}.1.31.0.nupkg"), id, "1.31.0", files);
            var packages = Path.Combine(dir, "nuget");

            var r = PluginNativeInstaller.Install(plugin, sources: [feed], environment: new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages });
            StringAssert.StartsWith(r.Source, Path.Combine(packages, id.ToLowerInvariant(), "1.31.0"));
            CollectionAssert.AreEqual(files["libonnxruntime_providers_cuda.so"], File.ReadAllBytes(Path.Combine(plugin, "native", "libonnxruntime_providers_cuda.so")));

            // A feed without the package: NuGet's own error, and where else to get it.
            var empty = Path.Combine(dir, "empty-feed");
            Directory.CreateDirectory(empty);
            var e = Assert.ThrowsExactly<TesseraException>(() => PluginNativeInstaller.Install(plugin, sources: [empty], force: true,
                environment: new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(dir, "nuget2") }));
            StringAssert.Contains(e.Message, $"NuGet could not fetch {id} 1.31.0");
            StringAssert.Contains(e.Message, "--package <file.nupkg>");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void TheHostFindsAPluginsInstalledNativeOfTheManagedRelease()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var plugins = Path.Combine(dir, "plugins");
            var good = StagePlugin(plugins);
            PluginNativeInstaller.Install(good, WriteNupkg(Path.Combine(dir, "gpu.nupkg"), GpuPackage, "1.31.0", FakeNativeFiles()));
            Assert.AreEqual(Path.Combine(good, "native", "libonnxruntime.so"), NativeOnnxRuntime.FindInstalled([plugins], out var notes));
            Assert.AreEqual(0, notes.Count);
            // Also when the plugin folder itself is on the path.
            Assert.AreEqual(Path.Combine(good, "native", "libonnxruntime.so"), NativeOnnxRuntime.FindInstalled([good], out _));

            // Another release of ONNX Runtime is passed over with a note naming both versions.
            var receipt = Path.Combine(good, "native", "onnxruntime.json");
            var node = JsonNode.Parse(File.ReadAllText(receipt))!;
            node["version"] = "1.30.0";
            File.WriteAllText(receipt, node.ToJsonString());
            Assert.IsNull(NativeOnnxRuntime.FindInstalled([plugins], out notes));
            StringAssert.Contains(notes.Single(), "is ONNX Runtime 1.30.0, but this tessera's managed ONNX Runtime is 1.31");

            // A receipt naming a file outside native/ is not followed.
            node["version"] = "1.31.0";
            node["library"] = "../../../etc/passwd";
            File.WriteAllText(receipt, node.ToJsonString());
            Assert.IsNull(NativeOnnxRuntime.FindInstalled([plugins], out notes));
            StringAssert.Contains(notes.Single(), "which is not in");

            Assert.IsNull(NativeOnnxRuntime.FindInstalled([TestPaths.Fixtures], out notes), "the built plugins have no native installed");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>
    /// A copy of the built CLI whose cuda plugin has a "GPU native" installed: the packaged CPU libonnxruntime.so (an
    /// ONNX Runtime of the managed release, so it loads) under the plugin's native/. The host must load that one, not its
    /// own packaged copy, and the plugin must say it has no CUDA provider; TESSERA_ONNXRUNTIME=packaged keeps the packaged one.
    /// </summary>
    [TestMethod]
    [Timeout(300_000)]
    public void TheHostLoadsThePluginsInstalledNativeInsteadOfThePackagedOne()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            var cli = StageCli(dir);
            var plugin = Path.Combine(cli, "plugins", "cuda");
            var files = FakeNativeFiles();
            files["libonnxruntime.so"] = File.ReadAllBytes(PackagedOnnxRuntime);
            PluginNativeInstaller.Install(plugin, WriteNupkg(Path.Combine(dir, "gpu.nupkg"), GpuPackage, "1.31.0", files));
            var installed = Path.Combine(plugin, "native", "libonnxruntime.so");

            var (cuda, stderr) = CudaDevice(cli, dir, null);
            Assert.AreEqual(installed, cuda["properties"]!["onnxruntime"]!.GetValue<string>(), stderr);
            StringAssert.Contains(cuda["reason"]!.GetValue<string>(), $"{installed} was installed as {GpuPackage} 1.31.0, but it has no CUDA execution provider");

            var (packaged, _) = CudaDevice(cli, dir, "packaged");
            Assert.AreEqual(Path.Combine(cli, "runtimes", "linux-x64", "native", "libonnxruntime.so"), packaged["properties"]!["onnxruntime"]!.GetValue<string>());
            StringAssert.Contains(packaged["reason"]!.GetValue<string>(), $"holds {GpuPackage} 1.31.0, but this process loaded");
            StringAssert.Contains(packaged["reason"]!.GetValue<string>(), "TESSERA_ONNXRUNTIME=packaged chose another library");

            // Without anything installed, the reason says what to run.
            Directory.Delete(Path.Combine(plugin, "native"), recursive: true);
            var (none, _) = CudaDevice(cli, dir, null);
            StringAssert.Contains(none["reason"]!.GetValue<string>(), "The GPU build of onnxruntime is not installed");
            StringAssert.Contains(none["reason"]!.GetValue<string>(), $"run `tessera plugin install cuda` (it fetches {GpuPackage} 1.31.0 from NuGet into {Path.Combine(plugin, "native")})");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void TheReasonNamesTheFirstMissingCudaLibraryAndWhatProvidesIt()
    {
        var dir = TestPaths.NewTempDir();
        try
        {
            // Computed here, independently of the plugin: the first of the provider's libraries the loader cannot open.
            var expected = ProviderNeeds.FirstOrDefault(l => !CanLoad(l));
            var reason = CudaReason(dir, null);
            if (expected is null) Assert.IsFalse(reason.Contains("The CUDA execution provider needs"), reason);
            else StringAssert.Contains(reason, $"The CUDA execution provider needs {expected}, which was not found: install ");

            // Stand-ins for the first two in a folder given as cuda_library_path: the next missing one is named.
            var zlib = new[] { "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1" }.FirstOrDefault(File.Exists);
            if (zlib is null) Assert.Inconclusive("no libz.so.1 to stand in for CUDA libraries");
            var libs = Path.Combine(dir, "cuda-libs");
            Directory.CreateDirectory(libs);
            foreach (var l in ProviderNeeds.Take(2)) File.CreateSymbolicLink(Path.Combine(libs, l), zlib);
            var next = ProviderNeeds.Skip(2).FirstOrDefault(l => !CanLoad(l));
            reason = CudaReason(dir, libs);
            Assert.IsFalse(reason.Contains($"needs {ProviderNeeds[0]}") || reason.Contains($"needs {ProviderNeeds[1]}"), reason);
            if (next is not null)
            {
                StringAssert.Contains(reason, $"The CUDA execution provider needs {next}, which was not found");
                if (next == "libcurand.so.10") StringAssert.Contains(reason, "cuRAND for CUDA 13 (NVIDIA's libcurand-13-x package");
            }
            // What provides each library, by the plugin's table.
            Assert.AreEqual("cuDNN 9 for CUDA 13 (NVIDIA's libcudnn9-cuda-13 package)", CudaLibraries.WhatProvides("libcudnn.so.9", 13));
            StringAssert.StartsWith(CudaLibraries.WhatProvides("libcudart.so.12", 12), "the CUDA runtime for CUDA 12 (NVIDIA's cuda-cudart-12-x package");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void DtNeededIsReadFromTheElfFileWithoutLoadingIt()
    {
        // The packaged CPU onnxruntime's dependencies, as `readelf -d` lists them.
        CollectionAssert.AreEqual(
            new[] { "libdl.so.2", "librt.so.1", "libpthread.so.0", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1", "libc.so.6", "ld-linux-x86-64.so.2" },
            ElfNeeded.Read(PackagedOnnxRuntime).ToArray());
        var notElf = Path.GetTempFileName();
        try
        {
            File.WriteAllText(notElf, "not an ELF file");
            Assert.ThrowsExactly<InvalidDataException>(() => ElfNeeded.Read(notElf));
            // A provider library that cannot be read falls back to the packaged list.
            CollectionAssert.AreEqual(CudaLibraries.PackagedProviderNeeds.ToArray(), CudaLibraries.NeededBy(notElf).ToArray());
        }
        finally { File.Delete(notElf); }
        CollectionAssert.AreEqual(ProviderNeeds, CudaLibraries.PackagedProviderNeeds.ToArray());
    }

    /// <summary>The plugin's list against the real package's provider library, where NuGet has it (it is 245 MB: not fetched for this).</summary>
    [TestMethod]
    public void ThePackagedListIsWhatTheGpuPackagesCudaProviderLinks()
    {
        var provider = Path.Combine(PluginNativeInstaller.GlobalPackagesFolder(), GpuPackage.ToLowerInvariant(), "1.31.0", "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so");
        if (!File.Exists(provider)) Assert.Inconclusive($"{GpuPackage} 1.31.0 is not in the NuGet cache ({provider}); `tessera plugin install cuda` fetches it");
        var needed = ElfNeeded.Read(provider);
        CollectionAssert.IsSubsetOf(ProviderNeeds.Where(l => l != "libcudnn.so.9").ToArray(), needed.ToArray());
        CollectionAssert.Contains(needed.ToArray(), "libcuda.so.1");
        CollectionAssert.AreEqual(ProviderNeeds, CudaLibraries.NeededBy(provider).ToArray());
    }

    /// <summary>
    /// The real GPU package, installed from the NuGet cache into a copy of the CLI: its libonnxruntime.so loads here
    /// (no GPU), lists the CUDA provider, runs the CPU EP through the managed 1.31.1 API with the same image as the
    /// packaged build, and cuda:0 names the first missing CUDA library.
    /// </summary>
    [TestMethod]
    [TestCategory("Slow")]
    [Timeout(600_000)]
    public void TheRealGpuPackageLoadsAndGeneratesOnTheCpuAndCudaNamesWhatIsMissing()
    {
        var nupkg = Path.Combine(PluginNativeInstaller.GlobalPackagesFolder(), GpuPackage.ToLowerInvariant(), "1.31.0", $"{GpuPackage.ToLowerInvariant()}.1.31.0.nupkg");
        if (!File.Exists(nupkg)) Assert.Inconclusive($"{GpuPackage} 1.31.0 is not in the NuGet cache ({nupkg})");
        var dir = TestPaths.NewTempDir();
        try
        {
            var cli = StageCli(dir);
            PluginNativeInstaller.Install(Path.Combine(cli, "plugins", "cuda"), nupkg);
            var (cuda, stderr) = CudaDevice(cli, dir, null);
            Assert.AreEqual("1.31.0", cuda["properties"]!["onnxruntime_version"]!.GetValue<string>(), stderr);
            var reason = cuda["reason"]!.GetValue<string>();
            Assert.IsFalse(reason.Contains("no CUDA execution provider"), reason);
            var expected = ProviderNeeds.FirstOrDefault(l => !CanLoad(l));
            if (expected is not null) StringAssert.Contains(reason, $"needs {expected}, which was not found");

            var prompt = "the word \"MOON\" in red on a yellow background";
            var model = Path.Combine(TestPaths.RepoRoot, "models", "default");
            var gpuBuild = Cli(cli, dir, null, "generate", prompt, "-o", Path.Combine(dir, "gpu.png"), "--seed", "1", "--device", "cpu:0", "--model", model);
            Assert.AreEqual(0, gpuBuild.Code, gpuBuild.Stderr);
            var cpuBuild = Cli(cli, dir, "packaged", "generate", prompt, "-o", Path.Combine(dir, "cpu.png"), "--seed", "1", "--device", "cpu:0", "--model", model);
            Assert.AreEqual(0, cpuBuild.Code, cpuBuild.Stderr);
            CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(dir, "cpu.png")), File.ReadAllBytes(Path.Combine(dir, "gpu.png")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    // --- helpers ---

    private static bool CanLoad(string library)
    {
        if (!NativeLibrary.TryLoad(library, out var h)) return false;
        NativeLibrary.Free(h);
        return true;
    }

    /// <summary>cuda:0's reason from the fixture plugin loaded by an engine, with a driver that is absent.</summary>
    private static string CudaReason(string dir, string? libraryPath)
    {
        var options = TestPaths.Options(Path.Combine(dir, "cache"), TestPaths.Fixture("cuda"));
        options.PluginSettings["cuda"] = new() { ["driver_library"] = "/nonexistent/libcuda.so.1" };
        if (libraryPath is not null) options.PluginSettings["cuda"]["cuda_library_path"] = libraryPath;
        using var engine = new TesseraEngine(options);
        var info = engine.Devices.Get("cuda:0").Info;
        Assert.IsFalse(info.IsAvailable);
        return info.UnavailableReason!;
    }

    /// <summary>A copy of the deployed cuda plugin under <paramref name="root"/>/cuda.</summary>
    private static string StagePlugin(string root)
    {
        var plugin = Path.Combine(root, "cuda");
        Directory.CreateDirectory(plugin);
        foreach (var f in Directory.GetFiles(TestPaths.Fixture("cuda"))) File.Copy(f, Path.Combine(plugin, Path.GetFileName(f)));
        return plugin;
    }

    /// <summary>The built CLI folder, hard-linked (copied where links cannot be made), with a real copy of its cuda plugin.</summary>
    private static string StageCli(string dir)
    {
        var built = Path.GetDirectoryName(TestPaths.CliDll)!;
        var cli = Path.Combine(dir, "cli");
        if (Run("cp", ["-al", built, cli]).Code != 0)
        {
            if (Directory.Exists(cli)) Directory.Delete(cli, recursive: true);
            Assert.AreEqual(0, Run("cp", ["-a", built, cli]).Code);
        }
        var plugin = Path.Combine(cli, "plugins", "cuda");
        Directory.Delete(plugin, recursive: true);
        StagePlugin(Path.Combine(cli, "plugins"));
        return cli;
    }

    private static (JsonNode Cuda, string Stderr) CudaDevice(string cli, string dir, string? onnxRuntime)
    {
        var r = Cli(cli, dir, onnxRuntime, "devices", "--json");
        Assert.AreEqual(0, r.Code, r.Stderr);
        var cuda = JsonNode.Parse(r.Stdout)!["devices"]!.AsArray().Single(d => d!["id"]!.GetValue<string>() == "cuda:0")!;
        return (cuda, r.Stderr);
    }

    private static (int Code, string Stdout, string Stderr) Cli(string cli, string dir, string? onnxRuntime, params string[] args)
    {
        var env = new Dictionary<string, string?>
        {
            ["TESSERA_CACHE_DIR"] = Path.Combine(dir, "cache"), ["TESSERA_PLUGIN_PATH"] = null, ["TESSERA_ONNXRUNTIME"] = onnxRuntime,
        };
        return Run("dotnet", [Path.Combine(cli, "tessera.dll"), .. args], env, dir);
    }

    private static (int Code, string Stdout, string Stderr) Run(string file, string[] args, IReadOnlyDictionary<string, string?>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd ?? Path.GetTempPath() };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
            if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(240_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} did not finish within 240 s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static Dictionary<string, byte[]> FakeNativeFiles() => new()
    {
        ["libonnxruntime.so"] = Encoding.ASCII.GetBytes("stand-in for libonnxruntime.so"),
        ["libonnxruntime_providers_shared.so"] = Encoding.ASCII.GetBytes("stand-in for the provider bridge"),
        ["libonnxruntime_providers_cuda.so"] = Encoding.ASCII.GetBytes("stand-in for the CUDA provider"),
        ["libonnxruntime_providers_tensorrt.so"] = Encoding.ASCII.GetBytes("not wanted"),
    };

    /// <summary>A minimal NuGet package: a .nuspec and the native files under runtimes/linux-x64/native/, plus a LICENSE.</summary>
    private static string WriteNupkg(string path, string id, string version, IReadOnlyDictionary<string, byte[]> natives)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        void Add(string name, byte[] bytes)
        {
            using var s = zip.CreateEntry(name).Open();
            s.Write(bytes);
        }
        Add($"{id}.nuspec", Encoding.UTF8.GetBytes($"""
            <?xml version="1.0" encoding="utf-8"?>
            <package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
              <metadata><id>{id}</id><version>{version}</version><authors>tests</authors><description>test package</description></metadata>
            </package>
            """));
        Add("[Content_Types].xml", Encoding.UTF8.GetBytes("""<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="nuspec" ContentType="application/octet" /><Default Extension="so" ContentType="application/octet" /></Types>"""));
        Add("LICENSE", Encoding.ASCII.GetBytes("MIT"));
        foreach (var (name, bytes) in natives) Add($"runtimes/linux-x64/native/{name}", bytes);
        return path;
    }
}
