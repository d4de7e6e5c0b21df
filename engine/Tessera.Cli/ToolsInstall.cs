using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Tessera.Cli;

/// <summary>
/// The inference install (<c>tessera</c>) carries no TorchSharp or libtorch. The verbs that need them — training,
/// export, import, packaging, and the benchmarks that train or export — live in the tools install
/// (<c>tessera-tools</c>); <c>tessera</c> hands them over to it with the same arguments, standard streams and exit
/// code, so the user has one command either way, and says how to get the tools install when it is not there.
/// </summary>
public static partial class ToolsInstall
{
    /// <summary>Top-level verbs that belong to the tools install.</summary>
    public static readonly IReadOnlyDictionary<string, string> Verbs = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["train"] = "Train a stage (vq, ar, decoder) with TorchSharp; checkpoints, resume.",
        ["export"] = "Export checkpoints or any TorchSharp module to ONNX with a parity report.",
        ["import"] = "Import an official checkpoint (GLM-Image) as a Tessera package.",
        ["package"] = "Build a model package from trained stages.",
    };

    /// <summary>Subcommands of inference verbs that belong to the tools install.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> SubVerbs = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["bench"] = ["train", "export", "decode", "genai"],
        ["data"] = ["reconstruct"],
    };

    /// <summary>The environment variable naming the tools install (its tessera-tools.dll, executable or folder).</summary>
    public const string EnvironmentVariable = "TESSERA_TOOLS";

    public const string ExecutableName = "tessera-tools";

    /// <summary>How to get the tools install, for messages.</summary>
    public const string InstallHint =
        "Install it with 'dotnet tool install --global Tessera.Tools' (from a local feed: scripts/pack.sh <dir>, then add " +
        "'--add-source <dir>'), run it from a source checkout ('./tessera' builds it), or set " + EnvironmentVariable + " to its tessera-tools.dll.";

    private static readonly HashSet<string> GlobalOptionsWithValue = ["--config", "--plugin-path", "--fallback"];

    /// <summary>The command path of <paramref name="args"/> (its first two positional tokens), skipping global options.</summary>
    public static (string? Verb, string? Sub) CommandPath(string[] args)
    {
        var positional = new List<string>(2);
        for (int i = 0; i < args.Length && positional.Count < 2; i++)
        {
            var a = args[i];
            if (a == "--") break;
            if (a.StartsWith('-'))
            {
                if (GlobalOptionsWithValue.Contains(a)) i++; // its value
                if (positional.Count == 1) break;            // an option of the verb: no subcommand follows
                continue;
            }
            positional.Add(a);
        }
        return (positional.ElementAtOrDefault(0), positional.ElementAtOrDefault(1));
    }

    /// <summary>Whether <paramref name="args"/> name a verb of the tools install.</summary>
    public static bool Handles(string[] args)
    {
        var (verb, sub) = CommandPath(args);
        if (verb is null) return false;
        if (Verbs.ContainsKey(verb)) return true;
        return sub is not null && SubVerbs.TryGetValue(verb, out var subs) && subs.Contains(sub);
    }

    /// <summary>Where the tools install is: its tessera-tools.dll or executable, or null when there is none.</summary>
    /// <exception cref="ArgumentException">TESSERA_TOOLS is set but names nothing usable.</exception>
    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured)
        {
            var candidate = Directory.Exists(configured) ? Path.Combine(configured, ExecutableName + ".dll") : configured;
            if (!File.Exists(candidate))
                throw new ArgumentException($"{EnvironmentVariable} is '{configured}', which is not the tools install's tessera-tools.dll, its executable or its folder. Fix or unset it.");
            return Path.GetFullPath(candidate);
        }
        // Installed side by side (one folder holding both installs).
        var beside = Path.Combine(AppContext.BaseDirectory, ExecutableName + ".dll");
        if (File.Exists(beside)) return beside;
        // A source checkout: engine/Tessera.Cli/bin/<Configuration>/net10.0/ → engine/Tessera.Tools/bin/<Configuration>/net10.0/.
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        if (framework.Parent is { Parent: { Name: "bin", Parent: { Name: "Tessera.Cli", Parent: { } engine } } } configuration)
        {
            var built = Path.Combine(engine.FullName, "Tessera.Tools", "bin", configuration.Name, framework.Name, ExecutableName + ".dll");
            if (File.Exists(built)) return built;
        }
        // A dotnet tool (or any install) on PATH.
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var exe = Path.Combine(dir, ExecutableName);
            if (File.Exists(exe)) return exe;
        }
        return null;
    }

    /// <summary>Runs <paramref name="args"/> in the tools install and returns its exit code.</summary>
    public static int Forward(string[] args)
    {
        string? tools;
        try
        {
            tools = Locate();
        }
        catch (Exception e)
        {
            return CliErrors.Report(e);
        }
        var (verb, sub) = CommandPath(args);
        var what = Verbs.ContainsKey(verb!) ? verb : $"{verb} {sub}";
        if (tools is null)
        {
            Console.Error.WriteLine($"error: 'tessera {what}' is part of the Tessera tools install (training, export and import: TorchSharp and libtorch, about 600 MB), " +
                                    $"which is not installed here; the inference install runs generate, serve, devices, run, plugin, eval and bench overhead|generate|serve. {InstallHint}");
            return CliErrors.Failure;
        }
        var start = new ProcessStartInfo { UseShellExecute = false };
        if (tools.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            start.FileName = DotnetHost();
            start.ArgumentList.Add(tools);
        }
        else
        {
            start.FileName = tools;
        }
        foreach (var a in args) start.ArgumentList.Add(a);
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {tools}.");
        // Ctrl-C reaches the whole process group (the child handles it itself: it checkpoints and stops); a SIGTERM sent to
        // this process alone is passed on, so a supervisor stopping `tessera train` stops the training.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; SendSignal(child.Id, 15); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        child.WaitForExit();
        return child.ExitCode;
    }

    /// <summary>Lists the tools install's verbs in <c>tessera --help</c>; running one hands it over (see <see cref="Forward"/>).</summary>
    public static void AddPlaceholders(RootCommand root)
    {
        foreach (var (verb, description) in Verbs)
            root.Subcommands.Add(Placeholder(verb, description));
        foreach (var (verb, subs) in SubVerbs)
        {
            var parent = root.Subcommands.FirstOrDefault(c => c.Name == verb);
            if (parent is null) continue;
            foreach (var sub in subs) parent.Subcommands.Add(Placeholder(sub, "Needs the training side (TorchSharp)."));
        }
    }

    private static Command Placeholder(string name, string description)
    {
        var cmd = new Command(name, $"[tools install] {description}") { TreatUnmatchedTokensAsErrors = false };
        cmd.SetAction(parse => Forward(Environment.GetCommandLineArgs().Skip(1).ToArray()));
        return cmd;
    }

    private static string DotnetHost()
    {
        // The muxer running us (`dotnet tessera.dll`), else the one on PATH.
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)) return host;
        return "dotnet";
    }

    private static void SendSignal(int pid, int signal)
    {
        if (OperatingSystem.IsWindows()) return;
        _ = Kill(pid, signal);
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
