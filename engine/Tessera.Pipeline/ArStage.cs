using System.Diagnostics;
using Tessera.Abstractions;
using Tessera.Data.Prompting;

namespace Tessera.Pipeline;

/// <summary>
/// Runs the AR graph: prefill with the prompt prefix, then one token per step. The KV cache stays in device memory:
/// each step's <c>present.*</c> outputs are passed back, as device tensors, as the next step's
/// <c>past_key_values.*</c>; only the last logits row comes to the host to be sampled.
/// </summary>
public sealed class ArStage(ICompiledModel model, ArShape shape, PromptEncoder prompts)
{
    public ArLayout Layout { get; } = new(shape.TargetGrid, shape.PreviewGrid);

    public sealed record Tokens(int[] Preview, int[] Target, TimeSpan Prefill, TimeSpan Decode);

    /// <summary>The <c>position_ids</c> rows (t, h, w) of sequence entries [start, start + count).</summary>
    internal static long[] Positions(ArLayout layout, int start, int count, int prefixLength)
    {
        var positions = new long[count * 3];
        for (int i = 0; i < count; i++)
            (positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]) = layout.Position(start + i, prefixLength);
        return positions;
    }

    /// <param name="forcedPreview">Image-to-image: preview tokens to write instead of sampling them.</param>
    /// <param name="useKvCache">False recomputes the whole sequence each step (for benchmarks and checks).</param>
    public Tokens Generate(EncodedPrompt prompt, TokenSampler sampler, int[]? forcedPreview = null, bool useKvCache = true,
        IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        var v = prompts.Vocabulary;
        var prefix = Layout.Prefix(prompt, v);
        int total = Layout.VisualTokens;
        var visual = new int[total];
        var sequence = new List<long>(prefix.Select(i => (long)i));
        var pastK = new IDeviceTensor?[shape.Layers];
        var pastV = new IDeviceTensor?[shape.Layers];
        var watch = Stopwatch.StartNew();
        TimeSpan prefill = TimeSpan.Zero;
        try
        {
            for (int k = 0; k < total; k++)
            {
                cancel.ThrowIfCancellationRequested();
                // With the cache, only the newest token goes in; without it, the whole sequence does.
                int start = useKvCache && k > 0 ? sequence.Count - 1 : 0;
                int count = sequence.Count - start;
                var ids = sequence.Skip(start).ToArray();
                var positions = Positions(Layout, start, count, prefix.Length);
                var feeds = new Dictionary<string, ITensorValue>
                {
                    ["input_ids"] = HostTensor.Create(ids, 1, count),
                    ["position_ids"] = HostTensor.Create(positions, 1, count, 3),
                    ["attention_mask"] = HostTensor.Create(Enumerable.Repeat(1L, sequence.Count).ToArray(), 1, sequence.Count),
                };
                for (int l = 0; l < shape.Layers; l++)
                {
                    bool usePast = useKvCache && k > 0;
                    feeds[$"past_key_values.{l}.key"] = usePast ? pastK[l]! : HostTensor.Zeros(TensorElementType.Float32, 1, shape.KvHeads, 0, shape.HeadDim);
                    feeds[$"past_key_values.{l}.value"] = usePast ? pastV[l]! : HostTensor.Zeros(TensorElementType.Float32, 1, shape.KvHeads, 0, shape.HeadDim);
                }
                using var outputs = model.Run(feeds);
                var logits = new float[count * shape.CodebookSize];
                outputs["logits"].CopyTo<float>(logits);
                if (useKvCache)
                    for (int l = 0; l < shape.Layers; l++)
                    {
                        pastK[l]?.Dispose();
                        pastV[l]?.Dispose();
                        pastK[l] = outputs.Take($"present.{l}.key");
                        pastV[l] = outputs.Take($"present.{l}.value");
                    }
                int token = forcedPreview is not null && k < forcedPreview.Length
                    ? forcedPreview[k]
                    : sampler.Next(logits.AsSpan((count - 1) * shape.CodebookSize, shape.CodebookSize));
                visual[k] = token;
                sequence.Add(v.Visual(token));
                if (k == 0) prefill = watch.Elapsed;
                progress?.Report(new GenerationProgress("ar", k + 1, total));
            }
        }
        finally
        {
            foreach (var t in pastK.Concat(pastV)) t?.Dispose();
        }
        return new Tokens(visual[..Layout.PreviewTokens], visual[Layout.PreviewTokens..], prefill, watch.Elapsed - prefill);
    }
}
