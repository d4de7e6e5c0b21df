using Tessera.Abstractions;
using Tessera.Data.Prompting;

namespace Tessera.Pipeline.Batching;

/// <summary>
/// The AR stage for many requests at once (continuous batching): each request is an <see cref="ArSequence"/> with its
/// own sampler and KV cache; <see cref="Step"/> advances a set of them by one token in one model run, so requests can
/// join and leave between steps. A new sequence's first step is its prefill (run alone: prompts differ in length);
/// decode steps batch every other sequence, their caches left-padded to the longest and the padding masked out.
/// Each request's tokens depend only on its own prompt and seed; batching changes only the order of floating-point
/// sums inside attention (masked keys contribute exact zeros), see docs/serving.md.
/// </summary>
public sealed class ArBatch(ICompiledModel model, ArShape shape, PromptEncoder prompts)
{
    public ArLayout Layout { get; } = new(shape.TargetGrid, shape.PreviewGrid);

    /// <summary>One request's AR state.</summary>
    public sealed class ArSequence
    {
        internal ArSequence(int[] prefix, TokenSampler sampler, int[]? forced, int layers, int visualTokens)
        {
            Prefix = prefix; Sampler = sampler; Forced = forced;
            Keys = new float[layers][]; Values = new float[layers][];
            Visual = new int[visualTokens];
            LastToken = -1;
        }

        internal int[] Prefix { get; }
        internal TokenSampler Sampler { get; }
        internal int[]? Forced { get; }
        /// <summary>Per layer: (kv_heads, Length, head_dim), stored as kv_heads blocks of Capacity rows.</summary>
        internal float[][] Keys { get; }
        internal float[][] Values { get; }
        internal int Capacity { get; set; }
        /// <summary>Tokens in the KV cache.</summary>
        public int Length { get; internal set; }
        internal long LastToken { get; set; }
        public int[] Visual { get; }
        /// <summary>Visual tokens written so far.</summary>
        public int Done { get; internal set; }
        public bool Finished => Done == Visual.Length;
    }

    public ArSequence Start(EncodedPrompt prompt, TokenSampler sampler, int[]? forcedPreview = null) =>
        new(Layout.Prefix(prompt, prompts.Vocabulary), sampler, forcedPreview, shape.Layers, Layout.VisualTokens);

    /// <summary>Advances each unfinished sequence by one visual token: prefills one by one, decodes as one batch.</summary>
    public void Step(IReadOnlyList<ArSequence> sequences)
    {
        foreach (var s in sequences.Where(s => s.Done == 0 && !s.Finished)) Prefill(s);
        var decoding = sequences.Where(s => s.Done > 0 && !s.Finished).ToList();
        if (decoding.Count > 0) Decode(decoding);
    }

    private void Prefill(ArSequence s)
    {
        int count = s.Prefix.Length;
        var positions = ArStage.Positions(Layout, 0, count, s.Prefix.Length);
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["input_ids"] = HostTensor.Create(s.Prefix.Select(i => (long)i).ToArray(), 1, count),
            ["position_ids"] = HostTensor.Create(positions, 1, count, 3),
            ["attention_mask"] = HostTensor.Create(Enumerable.Repeat(1L, count).ToArray(), 1, count),
        };
        for (int l = 0; l < shape.Layers; l++)
        {
            feeds[$"past_key_values.{l}.key"] = HostTensor.Zeros(TensorElementType.Float32, 1, shape.KvHeads, 0, shape.HeadDim);
            feeds[$"past_key_values.{l}.value"] = HostTensor.Zeros(TensorElementType.Float32, 1, shape.KvHeads, 0, shape.HeadDim);
        }
        using var outputs = model.Run(feeds);
        Reserve(s, count + Layout.VisualTokens);
        for (int l = 0; l < shape.Layers; l++)
        {
            Append(s, s.Keys[l], outputs[$"present.{l}.key"].ToHost().AsSpan<float>(), 0, count, count, 0);
            Append(s, s.Values[l], outputs[$"present.{l}.value"].ToHost().AsSpan<float>(), 0, count, count, 0);
        }
        s.Length = count;
        var logits = new float[count * shape.CodebookSize];
        outputs["logits"].CopyTo<float>(logits);
        Emit(s, logits.AsSpan((count - 1) * shape.CodebookSize, shape.CodebookSize));
    }

    private void Decode(List<ArSequence> batch)
    {
        int b = batch.Count, past = batch.Max(s => s.Length), kv = shape.KvHeads, hd = shape.HeadDim;
        var ids = new long[b];
        var positions = new long[b * 3];
        var mask = new long[b * (past + 1)];
        for (int r = 0; r < b; r++)
        {
            var s = batch[r];
            ids[r] = s.LastToken;
            (positions[3 * r], positions[3 * r + 1], positions[3 * r + 2]) = Layout.Position(s.Length, s.Prefix.Length);
            int pad = past - s.Length;
            for (int j = pad; j <= past; j++) mask[r * (past + 1) + j] = 1;   // left padding stays 0
        }
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["input_ids"] = HostTensor.Create(ids, b, 1),
            ["position_ids"] = HostTensor.Create(positions, b, 1, 3),
            ["attention_mask"] = HostTensor.Create(mask, b, past + 1),
        };
        for (int l = 0; l < shape.Layers; l++)
        {
            feeds[$"past_key_values.{l}.key"] = Padded(batch, l, keys: true, past);
            feeds[$"past_key_values.{l}.value"] = Padded(batch, l, keys: false, past);
        }
        using var outputs = model.Run(feeds);
        var logits = new float[b * shape.CodebookSize];
        outputs["logits"].CopyTo<float>(logits);
        for (int l = 0; l < shape.Layers; l++)
        {
            var k = outputs[$"present.{l}.key"].ToHost();
            var v = outputs[$"present.{l}.value"].ToHost();
            for (int r = 0; r < b; r++)
            {
                // Row r's newest entry sits at index `past` of (b, kv, past + 1, hd).
                Append(batch[r], batch[r].Keys[l], k.AsSpan<float>()[(r * kv * (past + 1) * hd)..], past, 1, past + 1, batch[r].Length);
                Append(batch[r], batch[r].Values[l], v.AsSpan<float>()[(r * kv * (past + 1) * hd)..], past, 1, past + 1, batch[r].Length);
            }
        }
        for (int r = 0; r < b; r++)
        {
            batch[r].Length++;
            Emit(batch[r], logits.AsSpan(r * shape.CodebookSize, shape.CodebookSize));
        }
    }

    /// <summary>(b, kv, past, hd) from each sequence's cache, left-padded with zeros to <paramref name="past"/>.</summary>
    private HostTensor Padded(List<ArSequence> batch, int layer, bool keys, int past)
    {
        int kv = shape.KvHeads, hd = shape.HeadDim;
        var data = new float[batch.Count * kv * past * hd];
        for (int r = 0; r < batch.Count; r++)
        {
            var s = batch[r];
            var cache = keys ? s.Keys[layer] : s.Values[layer];
            int pad = past - s.Length;
            for (int h = 0; h < kv; h++)
                cache.AsSpan(h * s.Capacity * hd, s.Length * hd).CopyTo(data.AsSpan(((r * kv + h) * past + pad) * hd));
        }
        return HostTensor.Create(data, batch.Count, kv, past, hd);
    }

    private void Reserve(ArSequence s, int capacity)
    {
        int kv = shape.KvHeads, hd = shape.HeadDim;
        for (int l = 0; l < shape.Layers; l++)
        {
            s.Keys[l] = new float[kv * capacity * hd];
            s.Values[l] = new float[kv * capacity * hd];
        }
        s.Capacity = capacity;
    }

    /// <summary>Copies rows [from, from + count) of a (kv, rows, hd) block into the cache at row <paramref name="at"/>.</summary>
    private void Append(ArSequence s, float[] cache, ReadOnlySpan<float> source, int from, int count, int rows, int at)
    {
        int hd = shape.HeadDim;
        for (int h = 0; h < shape.KvHeads; h++)
            source.Slice((h * rows + from) * hd, count * hd).CopyTo(cache.AsSpan((h * s.Capacity + at) * hd));
    }

    private void Emit(ArSequence s, ReadOnlySpan<float> logits)
    {
        int k = s.Done;
        int token = s.Forced is not null && k < s.Forced.Length ? s.Forced[k] : s.Sampler.Next(logits);
        s.Visual[k] = token;
        s.LastToken = prompts.Vocabulary.Visual(token);
        s.Done++;
    }
}
