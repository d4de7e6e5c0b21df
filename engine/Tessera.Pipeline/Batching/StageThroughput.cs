using System.Diagnostics;

namespace Tessera.Pipeline.Batching;

/// <summary>
/// Each stage of a generator alone, in process, at batch sizes 1, 2, 4, … up to a limit: the AR writing every token of
/// B requests in one batch (prefills included), the decoder denoising B images together; images/s per size. What
/// <c>tessera bench serve</c> reports as the ceiling, and what <c>tessera serve --max-batch auto</c> picks its batch
/// limits from: the best batch of a compute-bound stage on a small device is often not the largest, and a limit
/// larger than that only makes requests move in lock-step cohorts, so two stages on separate devices stop overlapping.
/// </summary>
public sealed class StageThroughput
{
    private static readonly string[] Words = ["MOON", "CAT", "TREE", "SHIP", "BIRD", "LAMP", "ROSE", "FISH", "KING", "RAIN", "STAR", "BELL", "WOLF", "CAKE", "DOOR", "HILL"];

    private readonly ImageGenerator _generator;
    private readonly GenerationRequest[] _requests;
    private readonly ImageGenerator.PreparedRequest[] _prepared;
    private readonly int[][] _targets;
    private readonly double[] _ar, _decoder;

    /// <param name="maxBatch">The largest batch measured (1-256).</param>
    /// <param name="steps">Decoder steps per image (default: the model's).</param>
    public StageThroughput(ImageGenerator generator, int maxBatch, int? steps = null)
    {
        if (maxBatch is < 1 or > 256) throw new ArgumentException($"The batch limit must be 1-256 (got {maxBatch}).", nameof(maxBatch));
        _generator = generator;
        var sizes = new List<int>();
        for (int b = 1; b < maxBatch; b *= 2) sizes.Add(b);
        sizes.Add(maxBatch);
        Sizes = sizes.ToArray();
        _ar = new double[Sizes.Count];
        _decoder = new double[Sizes.Count];
        _requests = Enumerable.Range(0, maxBatch)
            .Select(i => new GenerationRequest($"the word \"{Words[i % Words.Length]}\" in red on a yellow background") { Seed = (ulong)i, Steps = steps }).ToArray();
        _prepared = _requests.Select(generator.Prepare).ToArray();
        // Target grids for the decoder: the AR's own output for these requests.
        _targets = new int[maxBatch][];
        using var ar = generator.CreateArBatch();
        var sequences = _prepared.Select(p => ar.Start(p.Prompt, p.Sampler, p.ForcedPreview)).ToList();
        while (sequences.Any(s => !s.Finished)) ar.Step(sequences);
        for (int i = 0; i < maxBatch; i++) _targets[i] = sequences[i].Visual[ar.Layout.PreviewTokens..];
    }

    /// <summary>The batch sizes measured.</summary>
    public IReadOnlyList<int> Sizes { get; }

    /// <summary>The AR's best images/s so far at each of <see cref="Sizes"/>.</summary>
    public IReadOnlyList<double> Ar => _ar;

    /// <summary>The decoder's best images/s so far at each of <see cref="Sizes"/>.</summary>
    public IReadOnlyList<double> Decoder => _decoder;

    /// <summary>
    /// Measures every size in <paramref name="passes"/> interleaved passes, each size at least
    /// <paramref name="imagesPerSize"/> images a pass (several batches of the small sizes), and keeps each size's best
    /// batch of all measurements so far (noise on a shared machine only slows a run). One batch per size read the
    /// decoder's batch 1 within 5% of its best when batch 8 was 1.8x faster, so auto picked 1.
    /// </summary>
    public void Measure(int passes = 2, int imagesPerSize = 4)
    {
        if (passes < 1) throw new ArgumentOutOfRangeException(nameof(passes), passes, "At least one pass.");
        for (int pass = 0; pass < passes; pass++)
            for (int k = 0; k < Sizes.Count; k++)
            {
                int b = Sizes[k];
                for (int run = 0; run < Math.Max(1, (imagesPerSize + b - 1) / b); run++)
                {
                    _ar[k] = Math.Max(_ar[k], b / ArSeconds(b));
                    _decoder[k] = Math.Max(_decoder[k], b / DecoderSeconds(b));
                }
            }
    }

    /// <summary>
    /// The smallest measured batch whose images/s is within <paramref name="tolerance"/> of the stage's best: as fast
    /// as the largest for throughput, and no larger than it needs to be.
    /// </summary>
    public int ChooseBatch(IReadOnlyList<double> rates, double tolerance = 0.05)
    {
        if (rates.Max() <= 0) throw new InvalidOperationException("Nothing measured yet; call Measure first.");
        return Choose(Sizes, rates, tolerance);
    }

    /// <summary>Whether the two stages run on different devices (then <see cref="Tune"/> batches only the slower one for throughput).</summary>
    public bool SeparateDevices => _generator.ArDevice != _generator.DecoderDevice;

    /// <summary>
    /// <paramref name="options"/> with each stage's batch limit: <see cref="ChooseBatch"/> for each stage, except that
    /// with the stages on separate devices (<see cref="SeparateDevices"/>) the one that is not the bottleneck gets the
    /// smallest batch whose images/s is at least <see cref="Headroom"/> times the bottleneck's best (see <see cref="ChooseBatches"/>).
    /// </summary>
    public BatchingOptions Tune(BatchingOptions options, double tolerance = 0.05)
    {
        var (ar, decoder) = ChooseBatches(Sizes, _ar, _decoder, SeparateDevices, tolerance);
        return options with { MaxArBatch = ar, MaxDecoderBatch = decoder };
    }

    /// <summary>How far ahead of the bottleneck a stage on its own device must stay at the batch chosen for it.</summary>
    public const double Headroom = 1.5;

    /// <summary>
    /// The batch limits for measured rates. On one device the stages share its cores, so each stage takes its own
    /// most efficient batch (<see cref="ChooseBatch"/>). On separate devices only the slower stage sets the pipeline's
    /// rate: the faster one needs no more batching than keeps it <see cref="Headroom"/> times ahead of it, and more
    /// only adds work (KV-cache rows joining and leaving) and cohorts. Measured on two one-core CPU devices: AR batches
    /// of up to 8 beside a decoder at batch 1 served 0.91-0.92x of no batching at concurrency 8; at batch 1 each, 1.05x.
    /// </summary>
    public static (int Ar, int Decoder) ChooseBatches(IReadOnlyList<int> sizes, IReadOnlyList<double> ar, IReadOnlyList<double> decoder, bool separateDevices, double tolerance = 0.05)
    {
        if (sizes.Count == 0 || ar.Count != sizes.Count || decoder.Count != sizes.Count) throw new ArgumentException("One rate per batch size for each stage.");
        if (ar.Max() <= 0 || decoder.Max() <= 0) throw new InvalidOperationException("Nothing measured yet; call Measure first.");
        int a = Choose(sizes, ar, tolerance), d = Choose(sizes, decoder, tolerance);
        if (!separateDevices) return (a, d);
        double arBest = ar.Max(), decoderBest = decoder.Max();
        if (arBest >= decoderBest) a = Smallest(sizes, ar, Headroom * decoderBest) ?? a;
        else d = Smallest(sizes, decoder, Headroom * arBest) ?? d;
        return (a, d);
    }

    /// <summary>The smallest size whose rate reaches <paramref name="needed"/>, or null when none does.</summary>
    private static int? Smallest(IReadOnlyList<int> sizes, IReadOnlyList<double> rates, double needed)
    {
        for (int k = 0; k < sizes.Count; k++)
            if (rates[k] >= needed) return sizes[k];
        return null;
    }

    private static int Choose(IReadOnlyList<int> sizes, IReadOnlyList<double> rates, double tolerance) =>
        Smallest(sizes, rates, (1 - tolerance) * rates.Max()) ?? sizes[^1];

    private double ArSeconds(int b)
    {
        using var ar = _generator.CreateArBatch();
        var fresh = _requests.Take(b).Select(_generator.Prepare).ToList(); // samplers start from their seeds
        var watch = Stopwatch.StartNew();
        var sequences = fresh.Select(p => ar.Start(p.Prompt, p.Sampler, p.ForcedPreview)).ToList();
        while (sequences.Any(s => !s.Finished)) ar.Step(sequences);
        return watch.Elapsed.TotalSeconds;
    }

    private double DecoderSeconds(int b)
    {
        var watch = Stopwatch.StartNew();
        var jobs = Enumerable.Range(0, b).Select(i =>
        {
            var (n, cfg, shift) = _generator.DecoderSettings(_requests[i]);
            return _generator.Decoder.Start(_targets[i], _generator.Package.Manifest.Ar.TargetGrid, _prepared[i].Prompt.Glyphs, _requests[i].Seed, n, cfg, shift,
                _generator.DecoderSampler(_requests[i]));
        }).ToList();
        while (jobs.Any(j => !j.Finished)) _generator.Decoder.Step(jobs.Where(j => !j.Finished).ToList());
        return watch.Elapsed.TotalSeconds;
    }
}
