using Tessera.Data;
using Tessera.Datasets;
using Tessera.Models.Dit;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>A decoder batch: images, prior token grids, glyph ids and (when the decoder takes one) glyph images.</summary>
public sealed class DecoderBatch(ImageBatch images, long[] prior, long[] glyphs, int priorGrid, int glyphLength, float[]? glyphImages) : IDisposable
{
    private readonly List<Tensor> _made = [];
    private Tensor Keep(Tensor t) { t.DetachFromDisposeScope(); _made.Add(t); return t; }

    public Tensor Images => images.Images;
    public Tensor Prior => Keep(tensor(prior, [images.Samples.Count, priorGrid, priorGrid]));
    public Tensor Glyphs => Keep(tensor(glyphs, [images.Samples.Count, glyphLength]));
    public Tensor? GlyphImages => glyphImages is null ? null : Keep(tensor(glyphImages, [images.Samples.Count, 1, images.Images.shape[2], images.Images.shape[3]]));

    public void Dispose()
    {
        images.Dispose();
        foreach (var t in _made) t.Dispose();
    }
}

/// <summary>
/// Training the DiT decoder with flow matching: x_t = (1 - t) x_0 + t ε with t drawn logit-normal, target velocity
/// ε - x_0, MSE loss. With probability ConditionDropout both prior and glyphs are dropped (the unconditional branch).
/// </summary>
public static class DecoderTraining
{
    public static TrainingRun<DecoderBatch> Create(StageConfig config, string outDir, StageRunOptions run)
    {
        var vqRun = config.VqRun ?? throw new InvalidDataException("The decoder config needs \"vqRun\": the folder of the trained VQ run.");
        var tokens = TokenizedDataset.LoadOrBuild(vqRun, config.Train.Seed, config.DatasetSize, run.Log ?? Console.Error);
        var dit = (config.Dit ?? new DitConfig()) with { CodebookSize = tokens.CodebookSize };
        manual_seed((long)(config.Train.Seed & long.MaxValue));
        var model = new DitDecoder(dit);
        if (config.InitFrom is not null) TrainedWeights.InitFrom(model, config.InitFrom, run.Log ?? Console.Error);
        var generator = new SampleGenerator(config.Train.Seed, dit.ImageSize);
        int batchSize = config.Train.BatchSize, g = dit.TokenGrid, plane = dit.ImageSize * dit.ImageSize;
        if (dit.GlyphImage) WritePlacementTable(generator, tokens, outDir, run.Log ?? Console.Error);

        return new TrainingRun<DecoderBatch>
        {
            Stage = "decoder",
            OutputDirectory = outDir,
            Config = config.Train,
            ModelConfigJson = System.Text.Json.JsonSerializer.Serialize(dit, StageConfig.Json),
            Model = model,
            MakeBatch = step =>
            {
                long first = (step - 1) * batchSize;
                var indices = Enumerable.Range(0, batchSize).Select(j => (int)((first + j) % tokens.Count)).ToArray();
                var samples = new DataSample[batchSize];
                var pixels = new float[batchSize * 3 * dit.ImageSize * dit.ImageSize];
                var prior = new long[batchSize * g * g];
                var glyphs = new long[batchSize * dit.MaxGlyphs];
                var glyphImages = dit.GlyphImage ? new float[batchSize * plane] : null;
                Parallel.For(0, batchSize, j =>
                {
                    samples[j] = generator.Sample(DataSplit.Train, indices[j]);
                    ModelInputs.ToChannelFirst(samples[j].Rgb, pixels.AsSpan(j * 3 * dit.ImageSize * dit.ImageSize, 3 * dit.ImageSize * dit.ImageSize));
                    ModelInputs.PriorFromTarget(tokens.Codes(indices[j]), tokens.Grid, g).CopyTo(prior, j * g * g);
                    ModelInputs.GlyphIds(System.Text.Encoding.UTF8.GetBytes(samples[j].Word), dit.MaxGlyphs).CopyTo(glyphs, j * dit.MaxGlyphs);
                    if (glyphImages is not null) samples[j].Layout.Mask(samples[j].Word, dit.ImageSize).CopyTo(glyphImages, j * plane);
                });
                return new DecoderBatch(new ImageBatch(samples, pixels), prior, glyphs, g, dit.MaxGlyphs, glyphImages);
            },
            Loss = (batch, step) =>
            {
                var x0 = batch.Images;
                long b = x0.shape[0];
                var t = sigmoid(randn(b));                                   // logit-normal time
                var noise = randn_like(x0);
                var tt = t.view(b, 1, 1, 1);
                var xt = (1 - tt) * x0 + tt * noise;
                var drop = rand(b).lt(dit.ConditionDropout);                 // (B) drop both conditions
                var prior = batch.Prior.masked_fill(drop.view(b, 1, 1), dit.NullPrior);
                var glyphs = batch.Glyphs.masked_fill(drop.view(b, 1), 0);
                var glyphImage = batch.GlyphImages?.masked_fill(drop.view(b, 1, 1, 1), 0);
                var v = model.Forward(xt, t, prior, glyphs, glyphImage);
                var loss = nn.functional.mse_loss(v, noise - x0);
                return (loss, new Dictionary<string, double>());
            },
            Options = run,
        };
    }

    /// <summary>File name of the token → text-coverage table that places the glyph image at inference.</summary>
    public const string PlacementFile = "text-placement.json";

    /// <summary>
    /// Measures, over (up to) the first 8,000 training samples, how much of each visual token's cell is text, so that
    /// inference can place the glyph image where the AR's tokens put the text (<see cref="TextPlacement"/>).
    /// </summary>
    private static void WritePlacementTable(SampleGenerator generator, TokenizedDataset tokens, string outDir, TextWriter log)
    {
        var path = Path.Combine(outDir, PlacementFile);
        if (File.Exists(path)) return;
        int n = Math.Min(tokens.Count, 8000);
        var rows = new (DataSample, int[])[n];
        Parallel.For(0, n, i => rows[i] = (generator.Sample(DataSplit.Train, i), tokens.Codes(i)));
        Directory.CreateDirectory(outDir);
        TextPlacementTable.Measure(rows, tokens.Grid, tokens.CodebookSize).Save(path);
        log.WriteLine($"wrote {path} (text coverage of {tokens.CodebookSize} visual tokens over {n} samples)");
    }
}
