using Tessera.Models;
using Tessera.Models.Training;
using Tessera.Cli;
using Tessera.Cli.Bench;

namespace Tessera.Tools.Training;

/// <summary>Runs a training stage (this class is the only place the CLI touches TorchSharp for training).</summary>
public static class TrainRunner
{
    private const int MaxNativeRetries = 3;

    private static long LatestStep(string outDir) =>
        new CheckpointStore(Path.Combine(outDir, "checkpoints")).List().Select(p => CheckpointStore.StepOf(p) ?? 0).DefaultIfEmpty(0).Max();

    public static int Run(string stage, string configPath, string outDir, bool resume, long? stopAfter, CancellationToken cancel, bool force = false)
    {
        Tessera.Abstractions.InputFiles.RequireRegularFile(configPath, "Stage config", Tessera.Abstractions.InputFiles.MaxJsonBytes);
        var config = StageConfig.Load(configPath);
        Directory.CreateDirectory(outDir);
        // Before anything in the folder changes: refuse to start over an existing run without --force.
        RunFolder.Prepare(outDir, resume, force, Console.Error);
        var savedConfig = Path.Combine(outDir, "config.json");
        if (!resume || !File.Exists(savedConfig)) File.Copy(configPath, savedConfig, overwrite: true); // a resume keeps the run's own copy
        Console.Error.WriteLine($"{TorchRuntime.Describe()}; training {stage} into {outDir}");
        TrainingResult? result = null;
        long lastCheckpoint = LatestStep(outDir);
        for (int failuresWithoutProgress = 0; result is null;)
        {
            using var display = new ConsoleProgress();
            var options = new StageRunOptions(resume, Console.Error, cancel, StopAfterStep: stopAfter, Force: force && !resume, Progress: new TrainingBar(display));
            Func<TrainingResult> run = stage switch
            {
                "vq" => VqStage.Create(config, outDir, options).Run,
                "ar" => ArTraining.Create(config, outDir, options).Run,
                "decoder" => DecoderTraining.Create(config, outDir, options).Run,
                _ => throw new ArgumentException($"Unknown stage '{stage}'; use vq, ar or decoder."),
            };
            try
            {
                result = run();
            }
            catch (System.Runtime.InteropServices.ExternalException e)
            {
                // An intermittent error inside libtorch (seen in decoder training, at varying steps, in Tensor + Tensor).
                // Resume is exact, so continuing from the last checkpoint gives the same run, minus the repeated steps.
                // Keep going while each attempt gets past a new checkpoint; stop after 3 attempts without progress.
                long now = LatestStep(outDir);
                failuresWithoutProgress = now > lastCheckpoint ? 1 : failuresWithoutProgress + 1;
                lastCheckpoint = now;
                if (failuresWithoutProgress > MaxNativeRetries) throw;
                Console.Error.WriteLine($"\nwarning: libtorch failed ({e.Message.Split('\n')[0]}); resuming {stage} from step {now}");
                resume = true;
            }
        }
        Console.WriteLine($"{stage}: steps {result.FirstStep}-{result.LastStep}, last loss {result.LastLoss:G4}, {result.StepsPerSecond:F2} steps/s" +
                          (result.CheckpointPath is null ? "" : $", checkpoint {result.CheckpointPath}") + (result.Interrupted ? " (interrupted)" : ""));
        return result.Interrupted ? 130 : 0;
    }

    /// <summary>The run's progress as one bar: "ar 1200/4000 loss 0.4321 … 3.10 steps/s ETA 00:15:02".</summary>
    private sealed class TrainingBar(ConsoleProgress display) : IProgress<TrainingProgress>
    {
        private ConsoleProgress.Bar? _bar;

        public void Report(TrainingProgress p)
        {
            _bar ??= display.Add(p.Stage, p.LastStep);
            _bar.Set(p.Step, $"{p.Step}/{p.LastStep} {p.Describe()}");
        }
    }
}
