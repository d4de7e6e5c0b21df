using Tessera.Models;
using Tessera.Models.Training;

namespace Tessera.Cli.Training;

/// <summary>Runs a training stage (this class is the only place the CLI touches TorchSharp for training).</summary>
public static class TrainRunner
{
    private const int MaxNativeRetries = 3;

    public static int Run(string stage, string configPath, string outDir, bool resume, long? stopAfter, CancellationToken cancel)
    {
        var config = StageConfig.Load(configPath);
        Directory.CreateDirectory(outDir);
        File.Copy(configPath, Path.Combine(outDir, "config.json"), overwrite: true);
        Console.Error.WriteLine($"{TorchRuntime.Describe()}; training {stage} into {outDir}");
        TrainingResult? result = null;
        for (int attempt = 1; result is null; attempt++)
        {
            var options = new StageRunOptions(resume, Console.Error, cancel, StopAfterStep: stopAfter);
            Func<TrainingResult> run = stage switch
            {
                "vq" => VqStage.Create(config, outDir, options).Run,
                "ar" => ArStage.Create(config, outDir, options).Run,
                "decoder" => DecoderStage.Create(config, outDir, options).Run,
                _ => throw new ArgumentException($"Unknown stage '{stage}'; use vq, ar or decoder."),
            };
            try
            {
                result = run();
            }
            catch (System.Runtime.InteropServices.ExternalException e) when (attempt < MaxNativeRetries)
            {
                // An intermittent error inside libtorch (seen once after ~1000 decoder steps). Resume is exact, so
                // continuing from the last checkpoint gives the same run, minus the steps repeated.
                Console.Error.WriteLine($"\nwarning: libtorch failed ({e.Message.Split('\n')[0]}); resuming {stage} from its last checkpoint (attempt {attempt + 1} of {MaxNativeRetries})");
                resume = true;
            }
        }
        Console.WriteLine($"{stage}: steps {result.FirstStep}-{result.LastStep}, last loss {result.LastLoss:G4}, {result.StepsPerSecond:F2} steps/s" +
                          (result.CheckpointPath is null ? "" : $", checkpoint {result.CheckpointPath}") + (result.Interrupted ? " (interrupted)" : ""));
        return result.Interrupted ? 130 : 0;
    }
}
