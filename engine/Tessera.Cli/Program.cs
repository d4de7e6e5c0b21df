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
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(DataCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(PackageCommand.Create());
        return root.Parse(args).Invoke();
    }
}
