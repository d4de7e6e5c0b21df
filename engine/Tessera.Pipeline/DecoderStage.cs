using Tessera.Abstractions;
using Tessera.Data;

namespace Tessera.Pipeline;

/// <summary>
/// Runs the DiT decoder with a flow-matching Euler sampler: from seeded Gaussian noise at t = 1 to the image at t = 0,
/// x ← x + (t_next − t)·v. With classifier-free guidance the conditional branch (prior tokens + glyphs) and the
/// unconditional one (no prior, no glyphs) run as one batch of two: v = v_u + cfg·(v_c − v_u).
/// </summary>
public sealed class DecoderStage(ICompiledModel model, DecoderShape shape, TextPlacement? placement = null)
{
    /// <summary>
    /// The glyph image for a decoder that takes one: the quoted text drawn where the target tokens put text
    /// (<see cref="TextPlacement.Fit"/>); null for decoders without that input or prompts without quoted text.
    /// </summary>
    public float[]? GlyphImage(int[] targetTokens, int targetGrid, byte[] glyphBytes)
    {
        if (!shape.GlyphImage) return null;
        if (placement is null) throw new InvalidOperationException("This decoder takes a glyph image but the package has no placement table.");
        var word = System.Text.Encoding.UTF8.GetString(glyphBytes).ToUpperInvariant();
        if (word.Length == 0) return new float[shape.ImageSize * shape.ImageSize];
        return placement.Fit(word, targetTokens, targetGrid, shape.ImageSize).Mask(word, shape.ImageSize);
    }

    /// <summary>
    /// One image being denoised: its noise, conditions and schedule, advanced one Euler step at a time by
    /// <see cref="Step"/>. Several jobs (different requests, at different steps) can share one model run.
    /// </summary>
    public sealed class Job
    {
        internal Job(float[] x, long[] prior, long[] glyphs, float[]? glyphImage, double[] times, double cfg)
        {
            X = x; Prior = prior; Glyphs = glyphs; GlyphImage = glyphImage; Times = times; Cfg = cfg;
        }

        public float[] X { get; }
        internal long[] Prior { get; }
        internal long[] Glyphs { get; }
        internal float[]? GlyphImage { get; }
        internal double[] Times { get; }
        public double Cfg { get; }
        public bool Guided => Cfg != 1.0;
        /// <summary>Steps done so far.</summary>
        public int Done { get; internal set; }
        public int Steps => Times.Length - 1;
        public bool Finished => Done == Steps;
        /// <summary>Model rows this job needs per step: 2 with guidance (conditional + unconditional), else 1.</summary>
        public int Rows => Guided ? 2 : 1;
    }

    /// <summary>Starts a job: seeded noise at t = 1 and the schedule.</summary>
    public Job Start(int[] targetTokens, int targetGrid, byte[] glyphBytes, ulong seed, int steps, double cfg, double shift)
    {
        int s = shape.ImageSize, g = shape.TokenGrid;
        return new Job(Gaussian(3 * s * s, SplitMix64.Mix(seed, 0xDEC0DE)), ModelInputs.PriorFromTarget(targetTokens, targetGrid, g),
            ModelInputs.GlyphIds(glyphBytes, shape.MaxGlyphs), GlyphImage(targetTokens, targetGrid, glyphBytes), FlowSchedule.Times(steps, shift), cfg);
    }

    /// <param name="batchedCfg">False runs the two CFG branches as two passes (for benchmarks).</param>
    public float[] Sample(int[] targetTokens, int targetGrid, byte[] glyphBytes, ulong seed, int steps, double cfg, double shift,
        bool batchedCfg = true, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        var job = Start(targetTokens, targetGrid, glyphBytes, seed, steps, cfg, shift);
        while (!job.Finished)
        {
            cancel.ThrowIfCancellationRequested();
            if (batchedCfg) Step([job]);
            else StepUnbatched(job);
            progress?.Report(new GenerationProgress("decoder", job.Done, steps));
        }
        return job.X;
    }

    /// <summary>
    /// Advances every job by one Euler step in a single model run: the batch holds each job's conditional row and,
    /// with guidance, its unconditional row (no prior, no glyphs), each at the job's own time t.
    /// </summary>
    public void Step(IReadOnlyList<Job> jobs)
    {
        var xs = new List<float[]>();
        var ts = new List<float>();
        var priors = new List<long[]>();
        var glyphs = new List<long[]>();
        var images = new List<float[]?>();
        foreach (var job in jobs)
        {
            if (job.Finished) throw new InvalidOperationException("A finished decoder job was stepped again.");
            float t = (float)job.Times[job.Done];
            xs.Add(job.X); ts.Add(t); priors.Add(job.Prior); glyphs.Add(job.Glyphs); images.Add(job.GlyphImage);
            if (job.Guided)
            {
                xs.Add(job.X); ts.Add(t); priors.Add(_nullPrior); glyphs.Add(_noGlyphs);
                images.Add(job.GlyphImage is null ? null : new float[job.GlyphImage.Length]);
            }
        }
        var v = Run(xs.ToArray(), ts.ToArray(), priors.ToArray(), glyphs.ToArray(), images.ToArray());
        int row = 0;
        foreach (var job in jobs)
        {
            var velocity = job.Guided ? Guide(v[row], v[row + 1], job.Cfg) : v[row];
            Advance(job, velocity);
            row += job.Rows;
        }
    }

    /// <summary>One step with the two CFG branches as separate runs (what batching the branches is measured against).</summary>
    private void StepUnbatched(Job job)
    {
        float t = (float)job.Times[job.Done];
        var cond = Run([job.X], [t], [job.Prior], [job.Glyphs], [job.GlyphImage])[0];
        if (!job.Guided) { Advance(job, cond); return; }
        var uncond = Run([job.X], [t], [_nullPrior], [_noGlyphs], [job.GlyphImage is null ? null : new float[job.GlyphImage.Length]])[0];
        Advance(job, Guide(cond, uncond, job.Cfg));
    }

    /// <summary>The unconditional branch's inputs: every prior cell "none", no glyphs (read only, shared by all jobs).</summary>
    private readonly long[] _nullPrior = Enumerable.Repeat((long)shape.CodebookSize, shape.TokenGrid * shape.TokenGrid).ToArray();
    private readonly long[] _noGlyphs = new long[shape.MaxGlyphs];

    private static float[] Guide(float[] conditional, float[] unconditional, double cfg)
    {
        var velocity = new float[conditional.Length];
        float w = (float)cfg;
        for (int p = 0; p < velocity.Length; p++) velocity[p] = unconditional[p] + w * (conditional[p] - unconditional[p]);
        return velocity;
    }

    private static void Advance(Job job, float[] velocity)
    {
        float dt = (float)(job.Times[job.Done + 1] - job.Times[job.Done]);
        var x = job.X;
        for (int p = 0; p < x.Length; p++) x[p] += dt * velocity[p];
        job.Done++;
    }

    private float[][] Run(float[][] xs, float[] ts, long[][] priors, long[][] glyphs, float[]?[] glyphImages)
    {
        int b = xs.Length, s = shape.ImageSize, g = shape.TokenGrid, pixels = 3 * s * s;
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["x_t"] = HostTensor.Create(xs.SelectMany(a => a).ToArray(), b, 3, s, s),
            ["t"] = HostTensor.Create(ts, b),
            ["prior"] = HostTensor.Create(priors.SelectMany(a => a).ToArray(), b, g, g),
            ["glyphs"] = HostTensor.Create(glyphs.SelectMany(a => a).ToArray(), b, shape.MaxGlyphs),
        };
        if (shape.GlyphImage) feeds["glyph_image"] = HostTensor.Create(glyphImages.SelectMany(a => a!).ToArray(), b, 1, s, s);
        using var outputs = model.Run(feeds);
        var all = new float[b * pixels];
        outputs["velocity"].CopyTo<float>(all);
        return Enumerable.Range(0, b).Select(i => all.AsSpan(i * pixels, pixels).ToArray()).ToArray();
    }

    /// <summary>Standard normal samples (Box-Muller over SplitMix64): the same on every machine for a seed.</summary>
    public static float[] Gaussian(int n, ulong seed)
    {
        var rng = new SplitMix64(seed);
        var z = new float[n];
        for (int i = 0; i < n; i += 2)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2 * Math.Log(u1));
            z[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < n) z[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return z;
    }
}
