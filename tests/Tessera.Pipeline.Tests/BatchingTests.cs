using Tessera.Abstractions;
using Tessera.Engine;
using Tessera.Pipeline;
using Tessera.Pipeline.Batching;

namespace Tessera.Pipeline.Tests;

/// <summary>Continuous batching on the shipped default model: batched requests get what they get alone.</summary>
[TestClass]
public sealed class BatchingTests
{
    private static string _dir = "";

    [ClassInitialize]
    public static void Init(TestContext _) => _dir = Path.Combine(Path.GetTempPath(), "tessera-tests", "batch-" + Guid.NewGuid().ToString("N"));

    [ClassCleanup]
    public static void Cleanup() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private static TesseraEngine Engine()
    {
        var o = new EngineOptions { UseDefaultPluginDirectory = false, UseEnvironmentPluginPath = false, CacheDirectory = Path.Combine(_dir, "cache") };
        o.PluginDirectories.Add(Path.Combine(AppContext.BaseDirectory, "fixtures", "cpu"));
        return new TesseraEngine(o);
    }

    /// <summary>Prompts of different lengths, so the batch mixes cache lengths (left padding) and prefills.</summary>
    private static readonly GenerationRequest[] Requests =
    [
        new("the word \"MOON\" in red on a yellow background") { Seed = 1 },
        new("the word \"CAT\" in white on a black background with a blue circle") { Seed = 2 },
        new("the word \"GARDEN\" in green on a pink background") { Seed = 3, Cfg = 2.0 },
        new("the word \"HAT\" in blue on a white background") { Seed = 4, Steps = 12 },
    ];

    /// <summary>The pixel tolerance docs/serving.md states for batched vs alone: one 8-bit level.</summary>
    public const int PixelTolerance = 1;

    [TestMethod]
    public void BatchedRequestsGetTheSameTokensAndPixelsWithinOneLevelOfRunningAlone()
    {
        var package = ModelPackage.Open(ModelPackage.DefaultDirectory());
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
        var alone = Requests.Select(r => generator.Generate(r)).ToList();
        using var batching = new BatchingGenerator(generator, new BatchingOptions { MaxArBatch = 4, MaxDecoderBatch = 4, Window = TimeSpan.Zero });
        batching.ArStart.Reset(); // the AR stage starts once all four are queued, so they share its first step whatever the machine's speed
        var queued = Requests.Select(r => batching.GenerateAsync(r)).ToList();
        batching.ArStart.Set();
        var batched = Task.WhenAll(queued).GetAwaiter().GetResult();
        int worst = 0, differing = 0;
        for (int i = 0; i < Requests.Length; i++)
        {
            CollectionAssert.AreEqual(alone[i].PreviewTokens, batched[i].PreviewTokens, $"request {i}: preview tokens");
            CollectionAssert.AreEqual(alone[i].TargetTokens, batched[i].TargetTokens, $"request {i}: target tokens");
            for (int p = 0; p < alone[i].Rgb.Length; p++)
            {
                int d = Math.Abs(alone[i].Rgb[p] - batched[i].Rgb[p]);
                worst = Math.Max(worst, d);
                if (d > 0) differing++;
            }
        }
        Console.WriteLine($"batched vs alone: worst pixel difference {worst}, {differing} of {Requests.Length * 64 * 64 * 3} values differ");
        Assert.IsTrue(worst <= PixelTolerance, $"worst pixel difference {worst} > {PixelTolerance}");
        Assert.AreEqual(4, batching.Metrics.LargestArBatch, "the four requests shared AR steps");
        Assert.AreEqual(4, batching.Metrics.LargestDecoderBatch, "the four finished the same AR step, so they reached the idle decoder together and shared its steps");
        Assert.AreEqual(4, batching.Metrics.Completed);
        Assert.AreEqual(0.0, batching.Metrics.ArHostBytesPerStep(kvCache: true), "KV-cache bytes copied to or from the host per AR step");
        Assert.IsTrue(batching.Metrics.ArHostBytesPerStep(kvCache: false) > 0, "ids, positions, mask and logits are counted");
    }

    /// <summary>
    /// Requests join and leave a running batch at different cache lengths (one is dropped halfway, as a cancelled
    /// one is); every model run goes through a wrapper that counts the bytes each tensor moves between host and
    /// device. No K/V tensor of the AR graph or the row graphs ever crosses, the tokens are those of running alone,
    /// and the bytes ArBatch reports are exactly the bytes that crossed.
    /// </summary>
    [TestMethod]
    public void RowsJoinAndLeaveTheBatchWithTheKvCacheStayingOnTheDeviceAndTheSameTokensAsAlone()
    {
        var package = ModelPackage.Open(ModelPackage.DefaultDirectory());
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
        var alone = Requests.Select(r =>
        {
            var p = generator.Prepare(r);
            var t = generator.Ar.Generate(p.Prompt, p.Sampler);
            return t.Preview.Concat(t.Target).ToArray();
        }).ToList();

        var traffic = new HostTraffic();
        ICompiledModel Counted(ModelSource source) => new CountingModel(engine.Compile(source, "cpu:0").Model, traffic);
        var shape = package.Manifest.Ar;
        using var rows = KvCacheRows.Compile(Counted, 2 * shape.Layers, TensorElementType.Float32, shape.KvHeads, shape.HeadDim);
        using var ar = Counted(ModelSource.FromFile(package.FileFor("ar")));
        using var batch = new ArBatch(ar, shape, package.Prompts, rows);
        var sequences = new ArBatch.ArSequence?[Requests.Length];
        ArBatch.ArSequence Start(int i) { var p = generator.Prepare(Requests[i]); return sequences[i] = batch.Start(p.Prompt, p.Sampler); }
        var active = new List<ArBatch.ArSequence> { Start(0), Start(1) };
        long reportedKv = 0, reportedOther = 0;
        for (int step = 0; active.Count > 0; step++)
        {
            if (step == 10) active.Add(Start(2));                      // joins longer and shorter caches
            if (step == 25) { active.Add(Start(3)); active.Remove(sequences[1]!); } // one joins as another leaves
            var bytes = batch.Step(active);
            reportedKv += bytes.KvCache;
            reportedOther += bytes.Other;
            active.RemoveAll(s => s.Finished);
        }
        foreach (int i in new[] { 0, 2, 3 }) CollectionAssert.AreEqual(alone[i], sequences[i]!.Visual, $"request {i}: tokens");
        var dropped = sequences[1]!;
        CollectionAssert.AreEqual(alone[1][..dropped.Done], dropped.Visual[..dropped.Done], "the dropped request's tokens up to when it left");

        Console.WriteLine($"host bytes by tensor: {string.Join(", ", traffic.Bytes.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}");
        var cacheTensors = traffic.Bytes.Where(p => IsCache(p.Key)).ToList();
        Assert.IsTrue(cacheTensors.All(p => p.Value == 0), $"K/V bytes crossed: {string.Join(", ", cacheTensors.Where(p => p.Value > 0))}");
        Assert.IsTrue(traffic.Runs["kv-cache-select"] >= 2 && traffic.Runs["kv-cache-append"] >= 3, "leaving and joining ran on the device");
        Assert.AreEqual(0, reportedKv, "KV-cache bytes ArBatch reports");
        Assert.AreEqual(traffic.Bytes.Values.Sum(), reportedOther, "the bytes ArBatch reports are the bytes that crossed");
    }

    private static bool IsCache(string name) =>
        name.StartsWith("past_key_values.", StringComparison.Ordinal) || name.StartsWith("present.", StringComparison.Ordinal)
        || name.Split(':')[1] is var n && (n.StartsWith("x.") || n.StartsWith("y.") || n.StartsWith("a.") || n.StartsWith("b."));

    /// <summary>Bytes per tensor (model:name) that went host → device (host inputs) or device → host (reads), and runs per model.</summary>
    private sealed class HostTraffic
    {
        public Dictionary<string, long> Bytes { get; } = new();
        public Dictionary<string, int> Runs { get; } = new();
        public void Add(string tensor, long bytes) => Bytes[tensor] = Bytes.GetValueOrDefault(tensor) + bytes;
    }

    /// <summary>An ICompiledModel that counts host traffic and hands out device tensors it can take back without a copy.</summary>
    private sealed class CountingModel(ICompiledModel inner, HostTraffic traffic) : ICompiledModel
    {
        private readonly string _name = inner.Outputs.Any(o => o.Name == "logits") ? "ar" : inner.Inputs.Any(i => i.Name == "rows") ? "kv-cache-select" : "kv-cache-append";
        public DeviceId Device => inner.Device;
        public IReadOnlyList<TensorSpec> Inputs => inner.Inputs;
        public IReadOnlyList<TensorSpec> Outputs => inner.Outputs;
        public CompileReport Report => inner.Report;

        public RunOutputs Run(IReadOnlyDictionary<string, ITensorValue> inputs, IReadOnlyList<string>? outputNames = null)
        {
            traffic.Runs[_name] = traffic.Runs.GetValueOrDefault(_name) + 1;
            var feeds = new Dictionary<string, ITensorValue>();
            foreach (var (name, value) in inputs)
            {
                if (value is HostTensor h) traffic.Add(Key(name), h.ElementCount * h.ElementType.SizeOf());
                else if (value is not CountedTensor) Assert.Fail($"{Key(name)} is a device tensor from outside this test's models");
                feeds[name] = value is CountedTensor c ? c.Inner : value;
            }
            using var outputs = inner.Run(feeds, outputNames);
            return new RunOutputs(outputs.Names.ToList().Select(n => new KeyValuePair<string, IDeviceTensor>(n, new CountedTensor(outputs.Take(n), Key(n), traffic))));
        }

        private string Key(string tensor) => tensor.StartsWith("past_key_values.") || tensor.StartsWith("present.") ? tensor : $"{_name}:{tensor}";
        public void Dispose() => inner.Dispose();
    }

    private sealed class CountedTensor(IDeviceTensor inner, string key, HostTraffic traffic) : IDeviceTensor
    {
        public IDeviceTensor Inner => inner;
        public DeviceId Device => inner.Device;
        public TensorElementType ElementType => inner.ElementType;
        public long[] Shape => inner.Shape;
        public HostTensor ToHost() { var h = inner.ToHost(); traffic.Add(key, h.ElementCount * h.ElementType.SizeOf()); return h; }
        public void CopyTo<T>(Span<T> destination) where T : unmanaged { inner.CopyTo(destination); traffic.Add(key, (long)destination.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()); }
        public void Dispose() => inner.Dispose();
    }

    [TestMethod]
    public void StageThroughputTunesEachStageToTheSmallestBatchWithinFivePercentOfItsBest()
    {
        var package = ModelPackage.Open(ModelPackage.DefaultDirectory());
        using var engine = Engine();
        using var generator = new ImageGenerator(engine, package, "cpu:0", "cpu:0");
        var probe = new StageThroughput(generator, 4, steps: 1);
        CollectionAssert.AreEqual(new[] { 1, 2, 4 }, probe.Sizes.ToArray());
        Assert.ThrowsExactly<InvalidOperationException>(() => probe.ChooseBatch(probe.Ar), "nothing measured yet");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => probe.Measure(passes: 0));
        probe.Measure();
        var tuned = probe.Tune(new BatchingOptions { QueueCapacity = 7 });
        Assert.AreEqual(7, tuned.QueueCapacity, "the other options are kept");
        foreach (var (name, rates, chosen) in new[] { ("ar", probe.Ar, tuned.MaxArBatch), ("decoder", probe.Decoder, tuned.MaxDecoderBatch) })
        {
            Assert.IsTrue(rates.All(r => r > 0), $"{name}: every size measured");
            int k = probe.Sizes.ToList().IndexOf(chosen);
            Assert.IsTrue(k >= 0, $"{name}: {chosen} is a measured size");
            Assert.IsTrue(rates[k] >= 0.95 * rates.Max(), $"{name}: batch {chosen} at {rates[k]:F2} images/s is within 5% of the best {rates.Max():F2}");
            for (int j = 0; j < k; j++) Assert.IsTrue(rates[j] < 0.95 * rates.Max(), $"{name}: the smaller batch {probe.Sizes[j]} would have done");
        }
        // The rule itself, on figures where it is unambiguous.
        Assert.AreEqual(2, probe.ChooseBatch([5.0, 9.6, 10.0]), "the smallest within 5%");
        Assert.AreEqual(4, probe.ChooseBatch([5.0, 9.0, 10.0]));
        Assert.AreEqual(1, probe.ChooseBatch([10.0, 9.0, 8.0]), "a stage fastest alone is not batched");
        // On separate devices the stage that is not the bottleneck batches only as much as keeps it 1.5x ahead.
        int[] sizes = [1, 2, 4, 8];
        double[] ar = [45, 65, 96, 110], decoder = [18, 19, 19.5, 19.6];
        Assert.AreEqual((8, 2), StageThroughput.ChooseBatches(sizes, ar, decoder, separateDevices: false), "one device: each stage's own best");
        Assert.AreEqual((1, 2), StageThroughput.ChooseBatches(sizes, ar, decoder, separateDevices: true), "AR at batch 1 is 45 >= 1.5 x 19.6");
        Assert.AreEqual((4, 2), StageThroughput.ChooseBatches(sizes, [20, 25, 40, 44], decoder, separateDevices: true), "the smallest AR batch past 29.4");
        Assert.AreEqual((8, 2), StageThroughput.ChooseBatches(sizes, [10, 15, 20, 25], decoder, separateDevices: true), "no batch is 1.5x ahead: the AR's own best");
        Assert.AreEqual((8, 1), StageThroughput.ChooseBatches(sizes, [2, 3, 4, 5], [30, 31, 32, 33], separateDevices: true), "the decoder ahead: batch 1 is 6x the AR's best");
        Assert.ThrowsExactly<InvalidOperationException>(() => StageThroughput.ChooseBatches(sizes, [0, 0, 0, 0], decoder, true));
    }
}
