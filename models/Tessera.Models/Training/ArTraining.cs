using Tessera.Data;
using Tessera.Datasets;
using Tessera.Data.Prompting;
using Tessera.Models.Ar;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>A batch of AR training sequences, left-padded to the longest prefix in the batch.</summary>
public sealed class ArTrainingBatch(long[] ids, long[] positions, bool[] valid, long[] targets, int batch, int length, int visual) : IDisposable
{
    private readonly List<Tensor> _made = [];

    public int BatchSize => batch;
    public int Length => length;
    public int VisualTokens => visual;

    private Tensor Keep(Tensor t) { t.DetachFromDisposeScope(); _made.Add(t); return t; }
    public Tensor Ids => Keep(tensor(ids, [batch, length]));
    public Tensor Positions => Keep(tensor(positions, [batch, length, 3]));
    public Tensor Valid => Keep(tensor(valid, [batch, length]));
    public Tensor Targets => Keep(tensor(targets, [batch, visual]));

    public void Dispose()
    {
        foreach (var t in _made) t.Dispose();
    }
}

/// <summary>
/// Training the AR model: teacher-forced next-token prediction of the preview grid then the target grid, from the
/// caption (prose tokens + quoted word as bytes) and the size tokens. Loss: cross-entropy over the visual tokens.
/// </summary>
public static class ArTraining
{
    /// <summary>One training sequence (unpadded) for a sample: input ids, positions, and the visual targets.</summary>
    public static (int[] Ids, (long, long, long)[] Positions, int[] Targets) Sequence(
        string caption, int[] targetCodes, PromptEncoder encoder, ArLayout layout)
    {
        var v = encoder.Vocabulary;
        var prefix = layout.Prefix(encoder.Encode(caption), v);
        var visual = layout.PreviewFromTarget(targetCodes).Concat(targetCodes).ToArray();     // (80)
        var ids = prefix.Concat(visual.Take(visual.Length - 1).Select(v.Visual)).ToArray();  // last visual token is only a target
        var positions = Enumerable.Range(0, ids.Length).Select(i => layout.Position(i, prefix.Length)).ToArray();
        return (ids, positions, visual);
    }

    public static TrainingRun<ArTrainingBatch> Create(StageConfig config, string outDir, StageRunOptions run)
    {
        var vqRun = config.VqRun ?? throw new InvalidDataException("The AR config needs \"vqRun\": the folder of the trained VQ run.");
        var tokens = TokenizedDataset.LoadOrBuild(vqRun, config.Train.Seed, config.DatasetSize, run.Log ?? Console.Error);
        var encoder = PromptEncoder.ForDataset(tokens.CodebookSize);
        var arConfig = (config.Ar ?? new ArConfig()) with { VocabSize = encoder.Vocabulary.Size, CodebookSize = tokens.CodebookSize, TargetGrid = tokens.Grid };
        var layout = new ArLayout(arConfig.TargetGrid, arConfig.PreviewGrid);
        manual_seed((long)(config.Train.Seed & long.MaxValue));
        var model = new ArTransformer(arConfig);
        var generator = new SampleGenerator(config.Train.Seed);
        int batchSize = config.Train.BatchSize;
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(outDir).FullName, "tokenizer.json"), encoder.ToJson());

        return new TrainingRun<ArTrainingBatch>
        {
            Stage = "ar",
            OutputDirectory = outDir,
            Config = config.Train,
            ModelConfigJson = System.Text.Json.JsonSerializer.Serialize(arConfig, StageConfig.Json),
            Model = model,
            MakeBatch = step =>
            {
                var seqs = Enumerable.Range(0, batchSize).Select(j =>
                {
                    int index = (int)(((step - 1) * batchSize + j) % tokens.Count);
                    return Sequence(generator.Sample(DataSplit.Train, index).Caption, tokens.Codes(index), encoder, layout);
                }).ToList();
                int length = seqs.Max(s => s.Ids.Length), visual = layout.VisualTokens;
                var ids = new long[batchSize * length];
                var pos = new long[batchSize * length * 3];
                var valid = new bool[batchSize * length];
                var targets = new long[batchSize * visual];
                for (int b = 0; b < batchSize; b++)
                {
                    var (sIds, sPos, sTargets) = seqs[b];
                    int pad = length - sIds.Length;
                    for (int i = 0; i < sIds.Length; i++)
                    {
                        int at = b * length + pad + i;
                        ids[at] = sIds[i];
                        valid[at] = true;
                        (pos[at * 3], pos[at * 3 + 1], pos[at * 3 + 2]) = sPos[i];
                    }
                    for (int i = 0; i < visual; i++) targets[b * visual + i] = sTargets[i];
                }
                return new ArTrainingBatch(ids, pos, valid, targets, batchSize, length, visual);
            },
            Loss = (batch, step) =>
            {
                var logits = model.Forward(batch.Ids, batch.Positions, batch.Valid, null, out var _present); // (B, T, K)
                var visualLogits = logits.narrow(1, batch.Length - batch.VisualTokens, batch.VisualTokens); // predictions of the 80 visual tokens
                var targets = batch.Targets;
                var loss = nn.functional.cross_entropy(visualLogits.reshape(-1, arConfig.CodebookSize), targets.reshape(-1));
                using var noGrad = no_grad();
                var accuracy = visualLogits.argmax(-1).eq(targets).to(float32).mean().item<float>();
                return (loss, new Dictionary<string, double> { ["token_acc"] = accuracy });
            },
            Options = run,
        };
    }
}
