using System.CommandLine;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Commands;

/// <summary>
/// <c>tessera train vq|ar|decoder</c>. The command tree is built without touching TorchSharp; the work is in
/// <see cref="Training.TrainRunner"/>, a separate class, so libtorch loads only when training actually runs.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var train = new Command("train", "Train a stage of the model family in C# (TorchSharp, CPU). Checkpoints every N steps; --resume continues exactly.");
        foreach (var stage in new[] { "vq", "ar", "decoder" })
        {
            var config = new Option<FileInfo>("--config") { Description = $"Stage config JSON (see models/configs/{stage}.json).", Required = true };
            var output = new Option<DirectoryInfo>("--out") { Description = "Run folder: checkpoints/, loss.csv, loss.png.", Required = true };
            var resume = new Option<bool>("--resume") { Description = "Continue from the newest valid checkpoint in --out." };
            var steps = new Option<long?>("--stop-after") { Description = "Stop after this step (the schedule still uses the config's steps)." };
            var force = new Option<bool>("--force") { Description = "Start over in an --out folder that already holds a run, deleting its checkpoints and loss.csv (without it, that is refused)." };
            var cmd = new Command(stage, $"Train the {stage} stage.") { config, output, resume, steps, force };
            cmd.SetAction((parse, cancel) => Task.FromResult(CliErrors.Run(() => Training.TrainRunner.Run(
                stage, parse.GetValue(config)!.FullName, parse.GetValue(output)!.FullName, parse.GetValue(resume), parse.GetValue(steps), cancel, parse.GetValue(force)))));
            train.Subcommands.Add(cmd);
        }
        return train;
    }
}
