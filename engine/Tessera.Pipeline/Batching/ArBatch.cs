using Tessera.Abstractions;
using Tessera.Data.Prompting;

namespace Tessera.Pipeline.Batching;

/// <summary>
/// The AR stage for many requests at once (continuous batching): each request is an <see cref="ArSequence"/> with its
/// own sampler; <see cref="Step"/> advances a set of them by one token in one model run, so requests can join and
/// leave between steps. A new sequence's first step is its prefill (run alone: prompts differ in length); decode
/// steps batch every other sequence.
/// <para>
/// The batch's KV cache stays in device memory: one tensor per layer's key and value, (rows, kv_heads, past,
/// head_dim), each row left-padded with zeros to the longest row and the padding masked out. A decode step's
/// <c>present.*</c> outputs are the next step's <c>past_key_values.*</c> as they are; when rows join or leave,
/// <see cref="KvCacheRows"/> pads, stacks, gathers and trims the tensors on the device. Only token ids, positions,
/// the mask (in) and the logits (out) cross to the host; <see cref="StepHostBytes"/> counts them.
/// </para>
/// Each request's tokens depend only on its own prompt and seed; batching changes only the order of floating-point
/// sums inside attention (masked keys contribute exact zeros), see docs/serving.md. Not thread-safe: one thread
/// calls <see cref="Step"/> (the AR loop).
/// </summary>
public sealed class ArBatch(ICompiledModel model, ArShape shape, PromptEncoder prompts, KvCacheRows cacheRows) : IDisposable
{
    public ArLayout Layout { get; } = new(shape.TargetGrid, shape.PreviewGrid);

    /// <summary>One request's AR state.</summary>
    public sealed class ArSequence
    {
        internal ArSequence(int[] prefix, TokenSampler sampler, int[]? forced, int visualTokens)
        {
            Prefix = prefix; Sampler = sampler; Forced = forced;
            Visual = new int[visualTokens];
            LastToken = -1;
        }

        internal int[] Prefix { get; }
        internal TokenSampler Sampler { get; }
        internal int[]? Forced { get; }
        /// <summary>After the prefill and until it joins the batch: this sequence's own cache, (1, kv, Length, hd) per tensor.</summary>
        internal IDeviceTensor[]? Prefilled { get; set; }
        /// <summary>Tokens in the KV cache.</summary>
        public int Length { get; internal set; }
        internal long LastToken { get; set; }
        public int[] Visual { get; }
        /// <summary>Visual tokens written so far.</summary>
        public int Done { get; internal set; }
        public bool Finished => Done == Visual.Length;
    }

    /// <summary>Bytes one <see cref="Step"/> moved between host and device memory, by what they carry.</summary>
    public readonly record struct StepHostBytes(long KvCache, long Other);

    // The batch on the device: _rows[r] is row r of every cache tensor; tensor 2l is layer l's key, 2l + 1 its value.
    private readonly List<ArSequence> _rows = new();
    private IDeviceTensor[]? _cache;
    private int _past;
    private long _kvBytes, _otherBytes;

    /// <summary>Rows in the device batch (sequences that have joined and not left).</summary>
    public int Rows => _rows.Count;

    public ArSequence Start(EncodedPrompt prompt, TokenSampler sampler, int[]? forcedPreview = null) =>
        new(Layout.Prefix(prompt, prompts.Vocabulary), sampler, forcedPreview, Layout.VisualTokens);

    /// <summary>
    /// Advances each unfinished sequence by one visual token: prefills new ones one by one, then decodes the batch
    /// in one run. Sequences in the batch that are not in <paramref name="sequences"/> (finished, cancelled) leave it.
    /// When the step fails, the batch is dropped: its sequences cannot continue (start them again).
    /// </summary>
    public StepHostBytes Step(IReadOnlyList<ArSequence> sequences)
    {
        _kvBytes = 0; _otherBytes = 0;
        try
        {
            var wanted = sequences.Where(s => !s.Finished).ToList();
            foreach (var s in wanted.Where(s => s.Done == 0)) Prefill(s);
            foreach (var s in wanted.Where(s => s.Finished)) DisposePrefilled(s); // done at its prefill (one-token grids)
            Regroup(wanted.Where(s => !s.Finished).ToList());
            if (_rows.Count > 0) Decode();
            if (_rows.All(s => s.Finished)) Release();
        }
        catch
        {
            Release();
            foreach (var s in sequences) DisposePrefilled(s);
            throw;
        }
        return new StepHostBytes(_kvBytes, _otherBytes);
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
            feeds[$"past_key_values.{l}.key"] = HostTensor.Zeros(CacheType, 1, shape.KvHeads, 0, shape.HeadDim);
            feeds[$"past_key_values.{l}.value"] = HostTensor.Zeros(CacheType, 1, shape.KvHeads, 0, shape.HeadDim);
        }
        CountFeeds(feeds);
        using var outputs = model.Run(feeds);
        var logits = new float[count * shape.CodebookSize];
        outputs["logits"].CopyTo<float>(logits);
        _otherBytes += 4L * logits.Length;
        s.Prefilled = TakeCache(outputs);
        s.Length = count;
        Emit(s, logits.AsSpan((count - 1) * shape.CodebookSize, shape.CodebookSize));
    }

    /// <summary>Makes the device batch hold exactly <paramref name="wanted"/>: rows that left are dropped, prefilled ones join.</summary>
    private void Regroup(List<ArSequence> wanted)
    {
        var keep = new HashSet<ArSequence>(wanted, ReferenceEqualityComparer.Instance);
        var kept = Enumerable.Range(0, _rows.Count).Where(r => keep.Contains(_rows[r])).ToList();
        if (kept.Count < _rows.Count)
        {
            if (kept.Count == 0) Release();
            else
            {
                // Keep those rows, and drop the left padding every kept row has (the longest row left).
                int past = kept.Max(r => _rows[r].Length);
                var next = cacheRows.Select(_cache!, kept.Select(r => (long)r).ToArray(), _past - past, ref _otherBytes);
                var rows = kept.Select(r => _rows[r]).ToList();
                Replace(next, past);
                _rows.Clear();
                _rows.AddRange(rows);
            }
        }
        foreach (var s in wanted)
        {
            if (s.Prefilled is { } own)
            {
                s.Prefilled = null;
                if (_cache is null) Replace(own, s.Length);
                else
                {
                    int past = Math.Max(_past, s.Length);
                    IDeviceTensor[] next;
                    try { next = cacheRows.Append(_cache, past - _past, own, past - s.Length, ref _otherBytes); }
                    finally { foreach (var t in own) t.Dispose(); }
                    Replace(next, past);
                }
                _rows.Add(s);
            }
            else if (!_rows.Contains(s))
                throw new InvalidOperationException("An AR sequence that is not in this batch has no KV cache (an earlier step failed or it belongs to another batch); start it again.");
        }
    }

    private void Decode()
    {
        int b = _rows.Count, past = _past;
        var ids = new long[b];
        var positions = new long[b * 3];
        var mask = new long[b * (past + 1)];
        for (int r = 0; r < b; r++)
        {
            var s = _rows[r];
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
            feeds[$"past_key_values.{l}.key"] = _cache![2 * l];
            feeds[$"past_key_values.{l}.value"] = _cache[2 * l + 1];
        }
        CountFeeds(feeds);
        using var outputs = model.Run(feeds);
        var logits = new float[b * shape.CodebookSize];
        outputs["logits"].CopyTo<float>(logits);
        _otherBytes += 4L * logits.Length;
        // (b, kv, past + 1, hd): row r's newest entry sits at index `past`, its padding stays on the left.
        Replace(TakeCache(outputs), past + 1);
        for (int r = 0; r < b; r++)
        {
            _rows[r].Length++;
            Emit(_rows[r], logits.AsSpan(r * shape.CodebookSize, shape.CodebookSize));
        }
    }

    private TensorElementType CacheType { get; } =
        model.Inputs.FirstOrDefault(i => i.Name == "past_key_values.0.key")?.ElementType ?? TensorElementType.Float32;

    private IDeviceTensor[] TakeCache(RunOutputs outputs)
    {
        var cache = new IDeviceTensor[2 * shape.Layers];
        for (int l = 0; l < shape.Layers; l++)
        {
            cache[2 * l] = outputs.Take($"present.{l}.key");
            cache[2 * l + 1] = outputs.Take($"present.{l}.value");
        }
        return cache;
    }

    /// <summary>Host tensors given to a run: K/V ones (none, unless a cache came from the host) and the rest.</summary>
    private void CountFeeds(Dictionary<string, ITensorValue> feeds)
    {
        foreach (var (name, value) in feeds)
            if (value is HostTensor host)
            {
                long bytes = host.ElementCount * host.ElementType.SizeOf();
                if (name.StartsWith("past_key_values.", StringComparison.Ordinal)) _kvBytes += bytes; else _otherBytes += bytes;
            }
    }

    private void Replace(IDeviceTensor[] cache, int past)
    {
        if (_cache is not null && !ReferenceEquals(_cache, cache)) foreach (var t in _cache) t.Dispose();
        _cache = cache;
        _past = past;
    }

    /// <summary>Frees the device batch; its sequences leave it.</summary>
    private void Release()
    {
        if (_cache is not null) foreach (var t in _cache) t.Dispose();
        _cache = null;
        _past = 0;
        _rows.Clear();
    }

    private static void DisposePrefilled(ArSequence s)
    {
        if (s.Prefilled is null) return;
        foreach (var t in s.Prefilled) t.Dispose();
        s.Prefilled = null;
    }

    private void Emit(ArSequence s, ReadOnlySpan<float> logits)
    {
        int k = s.Done;
        int token = s.Forced is not null && k < s.Forced.Length ? s.Forced[k] : s.Sampler.Next(logits);
        s.Visual[k] = token;
        s.LastToken = prompts.Vocabulary.Visual(token);
        s.Done++;
    }

    /// <summary>Frees the device batch: every sequence in it leaves (and cannot continue).</summary>
    public void Clear() => Release();

    /// <summary>Frees the device batch (not the models, which belong to the generator).</summary>
    public void Dispose() => Release();
}
