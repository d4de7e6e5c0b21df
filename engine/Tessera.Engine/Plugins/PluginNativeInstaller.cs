using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Tessera.Abstractions;

namespace Tessera.Engine.Plugins;

/// <summary>
/// <c>tessera plugin install &lt;plugin&gt;</c>: fetches the NuGet package a plugin folder names in its
/// <c>native-package.json</c> (the CUDA plugin: Microsoft.ML.OnnxRuntime.Gpu.Linux) and puts its native libraries into
/// <c>&lt;plugin&gt;/native/</c> with a receipt (<c>onnxruntime.json</c>: package, version, each file's size and
/// SHA-256), which <see cref="NativeOnnxRuntime"/> then loads instead of the packaged CPU build. The package comes
/// through NuGet itself (<c>dotnet restore</c> of a <c>PackageDownload</c>, so the operator's NuGet.config, feeds,
/// proxy and signature checks apply) or from a .nupkg file the operator downloaded (air-gapped machines).
/// </summary>
public static class PluginNativeInstaller
{
    public const string ManifestFile = "native-package.json";
    public const string NativeFolder = "native";
    public const string ReceiptFile = "onnxruntime.json";

    /// <summary>What a plugin folder can install.</summary>
    public sealed record Manifest(string Plugin, string Package, string Version, string Runtime, string Library,
        IReadOnlyList<string> Files, IReadOnlyList<string> Notices, long DownloadBytes, long InstalledBytes);

    /// <summary>Where the files came from and where they went.</summary>
    public sealed record Result(string PluginFolder, string NativeFolder, string Library, string Package, string Version, string Source, long Bytes, bool AlreadyInstalled);

    /// <summary>Reads <c>native-package.json</c> of a plugin folder.</summary>
    public static Manifest ReadManifest(string pluginFolder)
    {
        var file = Path.Combine(pluginFolder, ManifestFile);
        if (!File.Exists(file)) throw new TesseraException($"{pluginFolder} has no {ManifestFile}, so this plugin has nothing to install.");
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            string Str(string k) => root[k]?.GetValue<string>() is { Length: > 0 } v ? v : throw new TesseraException($"{file}: '{k}' is missing.");
            List<string> List(string k) => root[k]?.AsArray().Select(n => n!.GetValue<string>()).ToList() ?? [];
            var files = List("files");
            foreach (var f in files.Concat(List("notices")))
                if (f.Length == 0 || f != Path.GetFileName(f)) throw new TesseraException($"{file}: '{f}' is not a plain file name.");
            var library = Str("library");
            if (!files.Contains(library)) throw new TesseraException($"{file}: the library '{library}' is not among its files.");
            return new Manifest(Str("plugin"), Str("package"), Str("version"), Str("runtime"), library, files, List("notices"),
                root["downloadBytes"]?.GetValue<long>() ?? 0, root["installedBytes"]?.GetValue<long>() ?? 0);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new TesseraException($"{file} is not valid ({e.Message}).", e);
        }
    }

    /// <summary>
    /// The plugin folder under <paramref name="pluginDirectories"/> (plugin folders or folders of them) whose manifest
    /// names <paramref name="plugin"/>; an error listing where it looked when there is none.
    /// </summary>
    public static string FindPluginFolder(string plugin, IEnumerable<string> pluginDirectories)
    {
        var looked = new List<string>();
        foreach (var root in pluginDirectories)
        {
            looked.Add(root);
            if (!Directory.Exists(root)) continue;
            var folders = File.Exists(Path.Combine(root, ManifestFile)) ? [root] : Directory.GetDirectories(root).Order(StringComparer.Ordinal).ToArray();
            foreach (var f in folders)
                if (File.Exists(Path.Combine(f, ManifestFile)) && string.Equals(ReadManifest(f).Plugin, plugin, StringComparison.OrdinalIgnoreCase))
                    return f;
        }
        throw new TesseraException($"No plugin named '{plugin}' with a {ManifestFile} was found (looked in {string.Join(", ", looked)}). " +
            "Only the cuda plugin installs a native package; pass --plugin-path to point at another plugin folder.");
    }

    /// <summary>
    /// Installs the manifest's files into <c>native/</c> of <paramref name="pluginFolder"/>. Sources, in order:
    /// <paramref name="nupkg"/> when given; the package already extracted in the NuGet global packages folder; else
    /// <c>dotnet restore</c> (from <paramref name="sources"/> instead of the configured feeds when given). Writes into a
    /// temporary folder renamed over <c>native/</c>, so a failure leaves the previous install as it was.
    /// </summary>
    public static Result Install(string pluginFolder, string? nupkg = null, IReadOnlyList<string>? sources = null, bool force = false,
        TextWriter? log = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        log ??= TextWriter.Null;
        pluginFolder = Path.GetFullPath(pluginFolder);
        var m = ReadManifest(pluginFolder);
        var target = Path.Combine(pluginFolder, NativeFolder);
        if (!force && nupkg is null && IsInstalled(target, m) is { } bytes)
            return new Result(pluginFolder, target, Path.Combine(target, m.Library), m.Package, m.Version, "already installed", bytes, AlreadyInstalled: true);

        RequireWritable(pluginFolder);
        var staging = Path.Combine(pluginFolder, $".native.partial-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            string source;
            if (nupkg is not null)
            {
                source = Path.GetFullPath(nupkg);
                log.WriteLine($"Installing {m.Package} {m.Version} from {source} ...");
                ExtractFromNupkg(source, m, staging);
            }
            else
            {
                var extracted = ExtractedPackage(m, environment);
                if (extracted is null)
                {
                    log.WriteLine($"Fetching {m.Package} {m.Version} with NuGet ({Megabytes(m.DownloadBytes)} download, {Megabytes(m.InstalledBytes)} installed) ...");
                    extracted = Restore(m, sources, log, environment);
                }
                source = extracted;
                log.WriteLine($"Copying the native libraries from {extracted} ...");
                CopyFromFolder(extracted, m, staging);
            }
            var receipt = WriteReceipt(staging, m, source);
            if (Directory.Exists(target))
            {
                var old = target + $".old-{Guid.NewGuid():N}";
                Directory.Move(target, old);
                Directory.Move(staging, target);
                Directory.Delete(old, recursive: true);
            }
            else Directory.Move(staging, target);
            return new Result(pluginFolder, target, Path.Combine(target, m.Library), m.Package, m.Version, source, receipt, AlreadyInstalled: false);
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Total bytes when <c>native/</c> holds this manifest's package with every file of the recorded size; else null.</summary>
    public static long? IsInstalled(string nativeFolder, Manifest m)
    {
        var receipt = Path.Combine(nativeFolder, ReceiptFile);
        if (!File.Exists(receipt)) return null;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(receipt))!.AsObject();
            if (root["package"]?.GetValue<string>() != m.Package || root["version"]?.GetValue<string>() != m.Version) return null;
            long total = 0;
            foreach (var name in m.Files)
            {
                var expected = root["files"]?[name]?["bytes"]?.GetValue<long>();
                var path = Path.Combine(nativeFolder, name);
                if (expected is null || !File.Exists(path) || new FileInfo(path).Length != expected) return null;
                total += expected.Value;
            }
            return total;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { return null; }
    }

    private static void RequireWritable(string folder)
    {
        var probe = Path.Combine(folder, $".write-test-{Guid.NewGuid():N}");
        try { File.WriteAllBytes(probe, []); File.Delete(probe); }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new TesseraException($"Cannot write to the plugin folder {folder} ({e.Message}). Run the install as a user who can write there (e.g. with sudo for a system install).", e);
        }
    }

    private static string Entry(Manifest m, string file) => $"runtimes/{m.Runtime}/native/{file}";

    private static void ExtractFromNupkg(string nupkg, Manifest m, string staging)
    {
        if (!File.Exists(nupkg)) throw new FileNotFoundException($"The package file {nupkg} does not exist.", nupkg);
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(nupkg); }
        catch (InvalidDataException e) { throw new TesseraException($"{nupkg} is not a .nupkg (zip) file: {e.Message}", e); }
        using (zip)
        {
            var nuspec = zip.Entries.FirstOrDefault(e => !e.FullName.Contains('/') && e.FullName.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase))
                ?? throw new TesseraException($"{nupkg} has no .nuspec, so it is not a NuGet package.");
            XDocument spec;
            using (var s = nuspec.Open()) spec = XDocument.Load(s);
            var meta = spec.Root?.Elements().FirstOrDefault(e => e.Name.LocalName == "metadata");
            var id = meta?.Elements().FirstOrDefault(e => e.Name.LocalName == "id")?.Value;
            var version = meta?.Elements().FirstOrDefault(e => e.Name.LocalName == "version")?.Value;
            if (!string.Equals(id, m.Package, StringComparison.OrdinalIgnoreCase) || version != m.Version)
                throw new TesseraException($"{nupkg} is {id} {version}, but the {m.Plugin} plugin needs {m.Package} {m.Version}.");
            foreach (var file in m.Files.Concat(m.Notices))
            {
                var entry = zip.GetEntry(Entry(m, file)) ?? zip.GetEntry(file);
                if (entry is null)
                {
                    if (m.Notices.Contains(file)) continue;
                    throw new TesseraException($"{nupkg} has no {Entry(m, file)}.");
                }
                entry.ExtractToFile(Path.Combine(staging, file), overwrite: true);
            }
        }
    }

    private static void CopyFromFolder(string packageFolder, Manifest m, string staging)
    {
        foreach (var file in m.Files)
        {
            var from = Path.Combine(packageFolder, Entry(m, file));
            if (!File.Exists(from)) throw new TesseraException($"{packageFolder} has no {Entry(m, file)}; the package is incomplete. Clear it from the NuGet cache and install again.");
            File.Copy(from, Path.Combine(staging, file));
        }
        foreach (var file in m.Notices)
            if (File.Exists(Path.Combine(packageFolder, file))) File.Copy(Path.Combine(packageFolder, file), Path.Combine(staging, file));
    }

    private static long WriteReceipt(string staging, Manifest m, string source)
    {
        var files = new JsonObject();
        long total = 0;
        foreach (var name in m.Files)
        {
            var path = Path.Combine(staging, name);
            using var s = File.OpenRead(path);
            files[name] = new JsonObject { ["bytes"] = s.Length, ["sha256"] = Convert.ToHexString(SHA256.HashData(s)).ToLowerInvariant() };
            total += s.Length;
        }
        var receipt = new JsonObject
        {
            ["plugin"] = m.Plugin, ["package"] = m.Package, ["version"] = m.Version, ["runtime"] = m.Runtime, ["library"] = m.Library,
            ["source"] = source, ["installedUtc"] = DateTime.UtcNow.ToString("O"), ["files"] = files,
        };
        File.WriteAllText(Path.Combine(staging, ReceiptFile), receipt.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return total;
    }

    /// <summary>The NuGet global packages folder: $NUGET_PACKAGES, else ~/.nuget/packages.</summary>
    public static string GlobalPackagesFolder(IReadOnlyDictionary<string, string>? environment = null) =>
        environment?.GetValueOrDefault("NUGET_PACKAGES") is { Length: > 0 } fromCaller ? fromCaller
        : Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env ? env
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The package's folder in the global packages folder when NuGet finished extracting it there (.nupkg.metadata written).</summary>
    private static string? ExtractedPackage(Manifest m, IReadOnlyDictionary<string, string>? environment)
    {
        var dir = Path.Combine(GlobalPackagesFolder(environment), m.Package.ToLowerInvariant(), m.Version.ToLowerInvariant());
        return File.Exists(Path.Combine(dir, ".nupkg.metadata")) && m.Files.All(f => File.Exists(Path.Combine(dir, Entry(m, f)))) ? dir : null;
    }

    /// <summary>
    /// <c>dotnet restore</c> of a throwaway project holding one <c>PackageDownload</c> (the package, exactly this
    /// version, no dependencies), in a temporary folder outside any repository; returns the extracted package folder.
    /// </summary>
    private static string Restore(Manifest m, IReadOnlyList<string>? sources, TextWriter log, IReadOnlyDictionary<string, string>? environment)
    {
        var work = Path.Combine(Path.GetTempPath(), $"tessera-plugin-install-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            var project = new XElement("Project", new XAttribute("Sdk", "Microsoft.NET.Sdk"),
                new XElement("PropertyGroup",
                    new XElement("TargetFramework", "net10.0"),
                    new XElement("ManagePackageVersionsCentrally", "false"),
                    new XElement("ImportDirectoryBuildProps", "false"), new XElement("ImportDirectoryBuildTargets", "false"),
                    new XElement("ImportDirectoryPackagesProps", "false")),
                new XElement("ItemGroup", new XElement("PackageDownload", new XAttribute("Include", m.Package), new XAttribute("Version", $"[{m.Version}]"))));
            File.WriteAllText(Path.Combine(work, "fetch.csproj"), project.ToString());
            var dotnet = DotnetExecutable();
            var psi = new ProcessStartInfo(dotnet) { WorkingDirectory = work, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "restore", "fetch.csproj", "-nologo", "-v", "q" }) psi.ArgumentList.Add(a);
            foreach (var s in sources ?? []) { psi.ArgumentList.Add("--source"); psi.ArgumentList.Add(s); }
            psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            psi.Environment["DOTNET_NOLOGO"] = "1";
            foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
            Process p;
            try { p = Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new TesseraException($"Could not run '{dotnet} restore' to fetch {m.Package} {m.Version} ({e.Message}). Install the .NET SDK, or download the package yourself and pass it with --package <file.nupkg>.", e);
            }
            using (p)
            {
                var stdout = p.StandardOutput.ReadToEndAsync();
                var stderr = p.StandardError.ReadToEndAsync();
                p.WaitForExit();
                var output = (stdout.Result + stderr.Result).Trim();
                if (p.ExitCode != 0)
                    throw new TesseraException($"NuGet could not fetch {m.Package} {m.Version} (dotnet restore exited {p.ExitCode}): {Tail(output)} " +
                        "Check the NuGet feeds (NuGet.config, --source), or download the package and pass it with --package <file.nupkg>.");
                if (output.Length > 0) log.WriteLine(output);
            }
            // NuGet says where it put packages in the assets file; the global folder otherwise.
            var assets = Path.Combine(work, "obj", "project.assets.json");
            var folders = File.Exists(assets) ? JsonNode.Parse(File.ReadAllText(assets))?["packageFolders"]?.AsObject().Select(kv => kv.Key).ToList() : null;
            foreach (var root in (folders ?? []).Append(GlobalPackagesFolder(environment)))
            {
                var dir = Path.Combine(root, m.Package.ToLowerInvariant(), m.Version.ToLowerInvariant());
                if (m.Files.All(f => File.Exists(Path.Combine(dir, Entry(m, f))))) return dir;
            }
            throw new TesseraException($"dotnet restore succeeded but {m.Package} {m.Version} with {Entry(m, m.Library)} is not in {string.Join(", ", folders ?? [GlobalPackagesFolder(environment)])}.");
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    private static string Tail(string s) => s.Length <= 2000 ? s : "…" + s[^2000..];

    private static string Megabytes(long bytes) => bytes > 0 ? $"about {bytes / 1_000_000} MB" : "size unknown";

    /// <summary>The dotnet that runs this process when it is the muxer (a dotnet tool), else `dotnet` on PATH.</summary>
    private static string DotnetExecutable()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        return "dotnet";
    }
}
