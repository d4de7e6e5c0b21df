using System.CommandLine;
using Tessera.Cli.Commands;

namespace Tessera.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Tessera: hybrid image generation (autoregressive tokens + diffusion decoder) on pluggable hardware.");
        GlobalOptions.AddTo(root);
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(DevicesCommand.Create());
        root.Subcommands.Add(PluginCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(PackageCommand.Create());
        root.Subcommands.Add(ImportCommand.Create());
        int code = root.Parse(args).Invoke();
        if (Environment.GetEnvironmentVariable("TESSERA_DIAGNOSTICS") == "assemblies") ReportLoaded();
        return code;
    }

    /// <summary>
    /// With TESSERA_DIAGNOSTICS=assemblies, lists on stderr what this process loaded (managed assemblies and native
    /// libraries), so an operator can check that e.g. the inference path never loads TorchSharp or libtorch.
    /// </summary>
    private static void ReportLoaded()
    {
        var managed = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name).Order(StringComparer.Ordinal);
        Console.Error.WriteLine($"loaded assemblies: {string.Join(", ", managed)}");
        if (File.Exists("/proc/self/maps"))
        {
            var native = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
                .Where(p => p.Contains(".so")).Select(Path.GetFileName).Distinct().Order(StringComparer.Ordinal);
            Console.Error.WriteLine($"loaded native libraries: {string.Join(", ", native)}");
        }
    }
}
