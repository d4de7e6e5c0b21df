using Tessera.Data;
using Tessera.Datasets;
using Tessera.Models.Vq;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>Training the VQ tokenizer: reconstruction (L1 + MSE) plus codebook and commitment terms.</summary>
public static class VqStage
{
    public static TrainingRun<ImageBatch> Create(StageConfig config, string outDir, StageRunOptions run)
    {
        var vqConfig = config.Vq ?? throw new InvalidDataException("The config has no \"vq\" section; a VQ stage config needs one.");
        manual_seed((long)(config.Train.Seed & long.MaxValue));
        var model = new VqTokenizer(vqConfig);
        var generator = new SampleGenerator(config.Train.Seed, vqConfig.ImageSize);
        int batchSize = config.Train.BatchSize;
        return new TrainingRun<ImageBatch>
        {
            Stage = "vq",
            OutputDirectory = outDir,
            Config = config.Train,
            ModelConfigJson = System.Text.Json.JsonSerializer.Serialize(vqConfig, StageConfig.Json),
            Model = model,
            MakeBatch = step => ImageBatch.Render(generator, DataSplit.Train, (step - 1) * batchSize, batchSize),
            Loss = (batch, step) =>
            {
                var x = batch.Images;
                var recon = model.Reconstruct(x, out var codes, out var quantLoss);
                var l1 = nn.functional.l1_loss(recon, x);
                var mse = nn.functional.mse_loss(recon, x);
                var used = codes.unique().Item1.shape[0];
                return (l1 + mse + quantLoss, new Dictionary<string, double>
                {
                    ["mse"] = mse.item<float>(),
                    ["codes_used"] = used,
                });
            },
            AfterStep = (batch, step) =>
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var codes = model.Tokenize(batch.Images);
                model.TrackUsageAndRestartDeadCodes(codes, batch.Images, step);
            },
            Options = run,
        };
    }
}
