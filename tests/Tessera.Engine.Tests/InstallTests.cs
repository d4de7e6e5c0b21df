using System.Diagnostics;
using System.Reflection;

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
    private const string Prompt = "the word \"MOON\" in red on a yellow background";

    private static string _work = "";
    private static string Feed => Path.Combine(_work, "feed");
    private static string Inference => Path.Combine(_work, "inference");
    private static string ToolsInstall => Path.Combine(_work, "tools");
    /// <summary>A private package folder: installing from the feed must not add to (or be served stale copies from) the
    /// user's NuGet cache.</summary>
    private static Dictionary<string, string> PrivatePackages => new() { ["NUGET_PACKAGES"] = Path.Combine(_work, "nuget") };
    /// <summary>Only the inference install on PATH (plus dotnet): no tools install anywhere it would look.</summary>
    private static Dictionary<string, string> NoTools => new(PrivatePackages) { ["PATH"] = $"{Inference}:{DotnetDirectory()}:/usr/bin:/bin" };

    /// <summary>Packs everything once (scripts/pack.sh, about a minute) and installs both tools from the feed.</summary>
    [ClassInitialize]
    public static void PackAndInstall(TestContext _)
    {
        _work = TestPaths.NewTempDir();
        var pack = Run("bash", [Path.Combine(TestPaths.RepoRoot, "scripts", "pack.sh"), Feed], TestPaths.RepoRoot, timeoutMs: 600_000);
        Assert.AreEqual(0, pack.Code, pack.Output);
        foreach (var id in new[] { "Tessera.Abstractions", "Tessera.Engine", "Tessera.Pipeline", "Tessera.Plugins.Cpu", "Tessera.Models.Default", "Tessera.Export", "Tessera.Cli", "Tessera.Tools" })
            Assert.IsTrue(Directory.GetFiles(Feed, id + ".*.nupkg").Length > 0, $"{id} was packed: {pack.Output}");
        foreach (var (id, path) in new[] { ("Tessera.Cli", Inference), ("Tessera.Tools", ToolsInstall) })
        {
            var install = Run("dotnet", ["tool", "install", id, "--tool-path", path, "--add-source", Feed, "--version", Version], _work, PrivatePackages, 600_000);
            Assert.AreEqual(0, install.Code, install.Output);
        }
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        if (_work.Length > 0 && Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }

    /// <summary>The version the packages are packed with (Directory.Build.props' TesseraVersion).</summary>
    private static string Version => typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .First(a => a.Key == "TesseraVersion").Value!;

    [TestMethod]
    [Timeout(900_000)]
    public void PackedToolsInstallAndRunFromAnEmptyFolder()
    {
        var files = Directory.GetFiles(Inference, "*", SearchOption.AllDirectories);
        var size = files.Sum(f => new FileInfo(f).Length);
        Assert.IsTrue(size < InferenceInstallLimitBytes, $"the inference install is {size / (1024.0 * 1024):F0} MB; it must stay under 200 MB");
        var torch = files.Where(f => Path.GetFileName(f).Contains("torch", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.AreEqual(0, torch.Length, "no TorchSharp or libtorch file in the inference install: " + string.Join(", ", torch));
        // The GPU onnxruntime is installed into the cuda plugin when wanted (tessera plugin install cuda), never shipped.
        Assert.IsTrue(files.Any(f => f.EndsWith("/plugins/cuda/native-package.json", StringComparison.Ordinal)), "the cuda plugin says what it can install");
        var gpu = files.Where(f => Path.GetFileName(f).StartsWith("libonnxruntime_providers_cuda", StringComparison.Ordinal) || f.Contains("/plugins/cuda/native/", StringComparison.Ordinal)).ToArray();
        Assert.AreEqual(0, gpu.Length, "no GPU onnxruntime in the base install: " + string.Join(", ", gpu));

        var empty = NewEmptyDir("empty");
        var tessera = Path.Combine(Inference, "tessera");
        var devices = Run(tessera, ["devices", "--json"], empty, NoTools);
        Assert.AreEqual(0, devices.Code, devices.Output);
        StringAssert.Contains(devices.Stdout, "\"cpu:0\"");

        var generate = Run(tessera, ["generate", Prompt, "-o", "moon.png", "--seed", "1"], empty, NoTools);
        Assert.AreEqual(0, generate.Code, generate.Output);
        var png = File.ReadAllBytes(Path.Combine(empty, "moon.png"));
        CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png.Take(4).ToArray(), "a PNG from the packaged default model");
        CollectionAssert.AreEqual(new[] { "moon.png" }, Directory.GetFileSystemEntries(empty).Select(Path.GetFileName).ToArray(),
            "only the image in the folder (no onnxruntime_profile__* or other files)");

        var missing = Run(tessera, ["train", "vq", "--help"], empty, NoTools);
        Assert.AreEqual(1, missing.Code, missing.Output);
        StringAssert.Contains(missing.Stderr, "tools install");
        StringAssert.Contains(missing.Stderr, "dotnet tool install --global Tessera.Tools");

        var withTools = new Dictionary<string, string>(NoTools) { ["PATH"] = $"{ToolsInstall}:{NoTools["PATH"]}" };
        var handed = Run(tessera, ["train", "vq", "--help"], empty, withTools);
        Assert.AreEqual(0, handed.Code, handed.Output);
        StringAssert.Contains(handed.Stdout, "--config", "the tools install's train help");
        CollectionAssert.AreEqual(new[] { "moon.png" }, Directory.GetFileSystemEntries(empty).Select(Path.GetFileName).ToArray());
    }

    /// <summary>
    /// A console application outside the repo references the packages from the feed (Tessera.Pipeline, the CPU plugin
    /// and the default model as payload packages; no project references), resolves Microsoft.Extensions.AI's
    /// IImageGenerator from services.AddTessera() and writes an image: the same bytes as the installed `tessera generate`.
    /// </summary>
    [TestMethod]
    [Timeout(900_000)]
    public void AConsoleAppReferencingThePackagesGeneratesThroughIImageGenerator()
    {
        var app = NewEmptyDir("app");
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="tessera" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        // The user's package cache serves as a read-only fallback (no download of what is there already, nothing
        // added to it); Tessera's own packages come from the feed into the private folder.
        var userCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } c ? c
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        File.WriteAllText(Path.Combine(app, "ImagesApp.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <NoWarn>MEAI001</NoWarn>
                <RestoreAdditionalProjectFallbackFolders>{userCache}</RestoreAdditionalProjectFallbackFolders>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Tessera.Pipeline" Version="{Version}" />
                <PackageReference Include="Tessera.Plugins.Cpu" Version="{Version}" />
                <PackageReference Include="Tessera.Models.Default" Version="{Version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Microsoft.Extensions.AI;
            using Microsoft.Extensions.DependencyInjection;

            var services = new ServiceCollection();
            services.AddTessera();
            using var provider = services.BuildServiceProvider();
            var images = provider.GetRequiredService<IImageGenerator>();
            var response = await images.GenerateImagesAsync(args[0], new ImageGenerationOptions { AdditionalProperties = new() { ["seed"] = 1UL } });
            var png = response.Contents.OfType<DataContent>().Single();
            File.WriteAllBytes(args[1], png.Data.ToArray());
            Console.WriteLine($"{png.Name} {png.MediaType} {png.Data.Length} bytes");
            """);

        var build = Run("dotnet", ["build", "-c", "Release", "-nologo", "-v", "q"], app, PrivatePackages, 600_000);
        Assert.AreEqual(0, build.Code, build.Output);
        var assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
        StringAssert.Contains(assets, "\"Tessera.Pipeline/" + Version + "\"", "referenced as a package");
        Assert.IsFalse(assets.Contains("\"type\": \"project\"", StringComparison.Ordinal), "no project references");
        var output = Path.Combine(app, "bin", "Release", "net10.0");
        Assert.IsTrue(File.Exists(Path.Combine(output, "plugins", "cpu", "Tessera.Plugins.Cpu.dll")), "the CPU plugin payload is in the output");
        Assert.IsTrue(File.Exists(Path.Combine(output, "models", "default", "manifest.json")), "the model payload is in the output");

        var run = Run("dotnet", [Path.Combine(output, "ImagesApp.dll"), Prompt, Path.Combine(app, "app.png")], app, NoTools, 300_000);
        Assert.AreEqual(0, run.Code, run.Output);
        StringAssert.Contains(run.Stdout, "tessera-1.png image/png");

        var reference = NewEmptyDir("reference");
        var cli = Run(Path.Combine(Inference, "tessera"), ["generate", Prompt, "-o", "moon.png", "--seed", "1"], reference, NoTools);
        Assert.AreEqual(0, cli.Code, cli.Output);
        CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(reference, "moon.png")), File.ReadAllBytes(Path.Combine(app, "app.png")),
            "IImageGenerator in an application and `tessera generate` give the same bytes for the same prompt and seed");
    }

    private static string NewEmptyDir(string name)
    {
        var dir = Path.Combine(_work, name);
        Directory.CreateDirectory(dir);
        return dir;
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
