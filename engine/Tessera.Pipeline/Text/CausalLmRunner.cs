using System.Text.Json.Nodes;
using Tessera.Abstractions;

namespace Tessera.Pipeline.Text;

/// <summary>The cache geometry of a causal decoder graph in ONNX Runtime GenAI's conventions.</summary>
public sealed record CausalLmShape(int Layers, int KvHeads, int HeadDim, int VocabSize)
{
    /// <summary>Reads it from a <c>genai_config.json</c> (<c>model.decoder.num_hidden_layers</c>, <c>num_key_value_heads</c>, <c>head_size</c>, <c>model.vocab_size</c>).</summary>
    public static CausalLmShape FromGenAiConfig(string path)
    {
        var model = JsonNode.Parse(File.ReadAllText(path))?["model"] ?? throw new InvalidDataException($"{path} has no \"model\" section.");
        var d = model["decoder"] ?? throw new InvalidDataException($"{path} has no \"model.decoder\" section.");
        int Get(JsonNode? n, string name) => n?[name]?.GetValue<int>() ?? throw new InvalidDataException($"{path} has no \"{name}\".");
        return new CausalLmShape(Get(d, "num_hidden_layers"), Get(d, "num_key_value_heads"), Get(d, "head_size"), Get(model, "vocab_size"));
    }
}

/// <summary>
/// Runs a causal decoder graph with GenAI-convention inputs (<c>input_ids</c>, <c>attention_mask</c>,
/// <c>position_ids</c>, <c>past_key_values.{i}.key|value</c>) on any device: prefill, then one token per step with
/// the KV cache kept on the device (each step's <c>present.*</c> go back as device tensors; the logits come to the
/// host into a reused buffer, and only each row's last position is read).
/// </summary>
public sealed class CausalLmRunner(ICompiledModel model, CausalLmShape shape)
{
    /// <summary>Time the last <see cref="GreedyBatch"/> spent inside the graph runs (the rest is this loop's own work: feeds, logits copy, argmax).</summary>
    public TimeSpan LastRunTime { get; private set; }

    /// <summary>Logits (B, T, vocab) for rows of equal length, all tokens real, no cache.</summary>
    public float[] Logits(long[][] rows)
    {
        int b = rows.Length, t = rows[0].Length;
        if (rows.Any(r => r.Length != t)) throw new ArgumentException("Rows must have the same length.", nameof(rows));
        var ids = rows.SelectMany(r => r).ToArray();
        var positions = Enumerable.Range(0, b).SelectMany(_ => Enumerable.Range(0, t).Select(i => (long)i)).ToArray();
        var feeds = Feeds(HostTensor.Create(ids, b, t), HostTensor.Create(Enumerable.Repeat(1L, b * t).ToArray(), b, t), HostTensor.Create(positions, b, t), null, b);
        using var outputs = model.Run(feeds, ["logits"]);
        var logits = new float[b * t * shape.VocabSize];
        outputs["logits"].CopyTo<float>(logits);
        return logits;
    }

    /// <summary>Greedy decode of <paramref name="newTokens"/> tokens after <paramref name="prompt"/> (batch 1).</summary>
    public int[] Greedy(IReadOnlyList<long> prompt, int newTokens, CancellationToken cancel = default) => GreedyBatch([prompt], newTokens, cancel)[0];

    /// <summary>Greedy decode of <paramref name="newTokens"/> tokens after each of <paramref name="prompts"/> (equal lengths), as one batch.</summary>
    public int[][] GreedyBatch(IReadOnlyList<IReadOnlyList<long>> prompts, int newTokens, CancellationToken cancel = default)
    {
        int b = prompts.Count, p = prompts[0].Count;
        if (prompts.Any(x => x.Count != p)) throw new ArgumentException("Prompts must have the same length.", nameof(prompts));
        var pastK = new IDeviceTensor?[shape.Layers];
        var pastV = new IDeviceTensor?[shape.Layers];
        var result = Enumerable.Range(0, b).Select(_ => new int[newTokens]).ToArray();
        long inRuns = 0;
        try
        {
            long[] ids = prompts.SelectMany(x => x).ToArray();
            var last = new float[b * shape.VocabSize];
            int length = 0, t = p;
            for (int step = 0; step < newTokens; step++)
            {
                cancel.ThrowIfCancellationRequested();
                var positions = Enumerable.Range(0, b).SelectMany(_ => Enumerable.Range(length, t).Select(i => (long)i)).ToArray();
                var mask = Enumerable.Repeat(1L, b * (length + t)).ToArray();
                var feeds = Feeds(HostTensor.Create(ids, b, t), HostTensor.Create(mask, b, length + t), HostTensor.Create(positions, b, t), step == 0 ? null : (pastK, pastV), b);
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                using var outputs = model.Run(feeds);
                inRuns += System.Diagnostics.Stopwatch.GetTimestamp() - t0;
                // Only each row's last position comes to the host, into one reused buffer (GenAI reads the same rows).
                var logitsOut = outputs["logits"];
                for (int row = 0; row < b; row++)
                    logitsOut.CopyTo<float>((long)(row * t + t - 1) * shape.VocabSize, last.AsSpan(row * shape.VocabSize, shape.VocabSize));
                for (int l = 0; l < shape.Layers; l++)
                {
                    pastK[l]?.Dispose();
                    pastV[l]?.Dispose();
                    pastK[l] = outputs.Take($"present.{l}.key");
                    pastV[l] = outputs.Take($"present.{l}.value");
                }
                ids = new long[b];
                for (int row = 0; row < b; row++)
                {
                    // The first index of the largest value, as a scalar loop (and GenAI's argmax) picks it.
                    int best = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(last.AsSpan(row * shape.VocabSize, shape.VocabSize));
                    result[row][step] = best;
                    ids[row] = best;
                }
                length += t;
                t = 1;
            }
        }
        finally
        {
            foreach (var x in pastK.Concat(pastV)) x?.Dispose();
            LastRunTime = System.Diagnostics.Stopwatch.GetElapsedTime(0, inRuns);
        }
        return result;
    }

    private Dictionary<string, ITensorValue> Feeds(ITensorValue ids, ITensorValue mask, ITensorValue positions, (IDeviceTensor?[] K, IDeviceTensor?[] V)? past, int batch)
    {
        var feeds = new Dictionary<string, ITensorValue> { ["input_ids"] = ids, ["attention_mask"] = mask, ["position_ids"] = positions };
        for (int l = 0; l < shape.Layers; l++)
        {
            feeds[$"past_key_values.{l}.key"] = past?.K[l] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, batch, shape.KvHeads, 0, shape.HeadDim);
            feeds[$"past_key_values.{l}.value"] = past?.V[l] ?? (ITensorValue)HostTensor.Zeros(TensorElementType.Float32, batch, shape.KvHeads, 0, shape.HeadDim);
        }
        return feeds;
    }
}
