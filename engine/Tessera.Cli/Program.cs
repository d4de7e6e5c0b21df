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
        int code;
        try
        {
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0 && parse.Action is System.CommandLine.Invocation.ParseErrorAction)
            {
                // One line, .NET type names in words; the usage is one --help away.
                var first = parse.Errors[0].Message;
                Console.Error.WriteLine($"error: {CliErrors.Friendly(first)}{(parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more)" : "")} See '{parse.CommandResult.Command.Name} --help'.");
                code = CliErrors.UsageError;
            }
            else
            {
                code = parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            }
        }
        catch (Exception e)
        {
            code = CliErrors.Report(e);
        }
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
