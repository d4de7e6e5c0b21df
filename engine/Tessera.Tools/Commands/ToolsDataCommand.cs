using System.CommandLine;
using Tessera.Cli;

namespace Tessera.Tools.Commands;

/// <summary><c>tessera data reconstruct</c>: runs the VQ's TorchSharp weights, so it lives in the tools install.</summary>
public static class ToolsDataCommand
{
    public static Command Create()
    {
        var data = new Command("data", "The generated dataset (tools install: what needs the training side).");
        data.Subcommands.Add(Reconstruct());
        return data;
    }

    private static Command Reconstruct()
    {
        var vqRun = new Option<DirectoryInfo>("--vq-run") { Description = "Folder of a VQ training run (its newest checkpoint's EMA weights are used).", Required = true };
        var output = new Option<FileInfo>("-o", "--output") { Description = "PNG to write.", DefaultValueFactory = _ => new FileInfo("vq-reconstruction.png") };
        var count = new Option<int>("--n") { Description = "Number of samples (1-64).", DefaultValueFactory = _ => 12 };
        var seed = new Option<ulong>("--seed") { Description = "Dataset seed.", DefaultValueFactory = _ => 0UL };
        var cmd = new Command("reconstruct", "Show validation samples next to their VQ reconstruction (needs TorchSharp: training side).") { vqRun, output, count, seed };
        cmd.SetAction(parse => CliErrors.Run(() =>
        {
            int n = parse.GetValue(count);
            if (n is < 1 or > 64) throw new ArgumentException($"--n is {n}; it must be from 1 to 64.");
            return Training.ReconstructPreview.Run(parse.GetValue(vqRun)!.FullName, n, parse.GetValue(seed), parse.GetValue(output)!.FullName);
        }));
        return cmd;
    }
}
