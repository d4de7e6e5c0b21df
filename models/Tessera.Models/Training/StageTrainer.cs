using Tessera.Abstractions;

namespace Tessera.Models.Training;

/// <summary>
/// Trains one stage of the model family from a stage config into a run folder: what <c>tessera train</c> runs, as an
/// API. Refuses to start over an existing run without <c>force</c>, keeps the run's own copy of the config, and
/// resumes from the last checkpoint after an intermittent libtorch failure (resume is exact, so the run is the same).
/// </summary>
public static class StageTrainer
{
    /// <summary>Attempts in a row that may fail inside libtorch without reaching a new checkpoint before giving up.</summary>
    public const int MaxNativeRetries = 3;

    public static readonly IReadOnlyList<string> Stages = ["vq", "ar", "decoder"];

    /// <param name="stage">vq, ar or decoder.</param>
    /// <param name="configPath">The stage config (JSON).</param>
    /// <param name="outDir">The run folder: checkpoints, loss CSV and plot, the config's copy.</param>
    /// <param name="options">Resume, force, cancellation, stop step, log; its progress is replaced by <paramref name="progress"/>.</param>
    /// <param name="progress">Called once per attempt for the attempt's progress receiver (a new bar after a retry); null for none.</param>
    public static TrainingResult Train(string stage, string configPath, string outDir, StageRunOptions options, Func<IProgress<TrainingProgress>?>? progress = null)
    {
        if (!Stages.Contains(stage)) throw new ArgumentException($"Unknown stage '{stage}'; use {string.Join(", ", Stages)}.");
        InputFiles.RequireRegularFile(configPath, "Stage config", InputFiles.MaxJsonBytes);
        var config = StageConfig.Load(configPath);
        var log = options.Log ?? Console.Error;
        Directory.CreateDirectory(outDir);
        // Before anything in the folder changes: refuse to start over an existing run without force.
        RunFolder.Prepare(outDir, options.Resume, options.Force, log);
        var savedConfig = Path.Combine(outDir, "config.json");
        if (!options.Resume || !File.Exists(savedConfig)) File.Copy(configPath, savedConfig, overwrite: true); // a resume keeps the run's own copy
        log.WriteLine($"{TorchRuntime.Describe()}; training {stage} into {outDir}");
        bool resume = options.Resume;
        long lastCheckpoint = LatestStep(outDir);
        for (int failuresWithoutProgress = 0; ;)
        {
            var attempt = options with { Resume = resume, Log = log, Force = options.Force && !resume, Progress = progress?.Invoke() };
            Func<TrainingResult> run = stage switch
            {
                "vq" => VqStage.Create(config, outDir, attempt).Run,
                "ar" => ArTraining.Create(config, outDir, attempt).Run,
                _ => DecoderTraining.Create(config, outDir, attempt).Run,
            };
            try
            {
                return run();
            }
            catch (System.Runtime.InteropServices.ExternalException e)
            {
                // An intermittent error inside libtorch (seen in decoder training, at varying steps, in Tensor + Tensor).
                // Keep going while each attempt gets past a new checkpoint; stop after MaxNativeRetries without progress.
                long now = LatestStep(outDir);
                failuresWithoutProgress = now > lastCheckpoint ? 1 : failuresWithoutProgress + 1;
                lastCheckpoint = now;
                if (failuresWithoutProgress > MaxNativeRetries) throw;
                log.WriteLine($"\nwarning: libtorch failed ({e.Message.Split('\n')[0]}); resuming {stage} from step {now}");
                resume = true;
            }
        }
    }

    private static long LatestStep(string outDir) =>
        new CheckpointStore(Path.Combine(outDir, "checkpoints")).List().Select(p => CheckpointStore.StepOf(p) ?? 0).DefaultIfEmpty(0).Max();
}
