using Tessera.Models;
using Tessera.Models.Training;

namespace Tessera.Cli.Training;

/// <summary>Runs a training stage (this class is the only place the CLI touches TorchSharp for training).</summary>
public static class TrainRunner
{
    public static int Run(string stage, string configPath, string outDir, bool resume, long? stopAfter, CancellationToken cancel)
    {
        var config = StageConfig.Load(configPath);
        Directory.CreateDirectory(outDir);
        File.Copy(configPath, Path.Combine(outDir, "config.json"), overwrite: true);
        Console.Error.WriteLine($"{TorchRuntime.Describe()}; training {stage} into {outDir}");
        var options = new StageRunOptions(resume, Console.Error, cancel, StopAfterStep: stopAfter);
        var run = stage switch
        {
            "vq" => (Func<TrainingResult>)VqStage.Create(config, outDir, options).Run,
            "ar" => ArStage.Create(config, outDir, options).Run,
            "decoder" => DecoderStage.Create(config, outDir, options).Run,
            _ => throw new ArgumentException($"Unknown stage '{stage}'; use vq, ar or decoder."),
        };
        var result = run();
        Console.WriteLine($"{stage}: steps {result.FirstStep}-{result.LastStep}, last loss {result.LastLoss:G4}, {result.StepsPerSecond:F2} steps/s" +
                          (result.CheckpointPath is null ? "" : $", checkpoint {result.CheckpointPath}") + (result.Interrupted ? " (interrupted)" : ""));
        return result.Interrupted ? 130 : 0;
    }
}
