using Tessera.Models.Training;
using Tessera.Cli;

namespace Tessera.Tools.Training;

/// <summary><c>tessera train</c>'s shell over <see cref="StageTrainer"/>: a progress bar and the result line (the only place the CLI touches TorchSharp for training).</summary>
public static class TrainRunner
{
    public static int Run(string stage, string configPath, string outDir, bool resume, long? stopAfter, CancellationToken cancel, bool force = false)
    {
        ConsoleProgress? display = null;
        try
        {
            var options = new StageRunOptions(resume, Console.Error, cancel, StopAfterStep: stopAfter, Force: force);
            // A fresh display per attempt: after a libtorch failure the resumed attempt draws its own bar.
            var result = StageTrainer.Train(stage, configPath, outDir, options, () => { display?.Dispose(); display = new ConsoleProgress(); return new TrainingBar(display); });
            display?.Dispose();
            display = null;
            Console.WriteLine($"{stage}: steps {result.FirstStep}-{result.LastStep}, last loss {result.LastLoss:G4}, {result.StepsPerSecond:F2} steps/s" +
                              (result.CheckpointPath is null ? "" : $", checkpoint {result.CheckpointPath}") + (result.Interrupted ? " (interrupted)" : ""));
            return result.Interrupted ? 130 : 0;
        }
        finally { display?.Dispose(); }
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
