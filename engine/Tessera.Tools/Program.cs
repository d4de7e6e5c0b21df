using System.CommandLine;
using Tessera.Tools.Commands;

namespace Tessera.Tools;

/// <summary>
/// <c>tessera-tools</c>: the verbs that need TorchSharp and libtorch. Users normally reach them through <c>tessera</c>,
/// which hands them over; running <c>tessera-tools</c> directly works the same.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("Tessera tools: training, export to ONNX, checkpoint import and packaging (TorchSharp + libtorch).");
        Tessera.Cli.GlobalOptions.AddTo(root);
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(ImportCommand.Create());
        root.Subcommands.Add(PackageCommand.Create());
        root.Subcommands.Add(ToolsBenchCommand.Create());
        root.Subcommands.Add(ToolsDataCommand.Create());
        return Tessera.Cli.Program.Run(root, args);
    }
}
