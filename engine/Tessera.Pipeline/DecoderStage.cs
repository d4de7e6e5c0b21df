using Tessera.Abstractions;
using Tessera.Data;
using Tessera.Pipeline.Sampling;

namespace Tessera.Pipeline;

/// <summary>
/// Runs the DiT decoder with a flow-matching sampler (<see cref="FlowSamplers"/>: Euler, Heun, DPM-Solver++(2M)): from
/// seeded Gaussian noise at t = 1 to the image at t = 0 over the shifted schedule; Euler is x ← x + (t_next − t)·v. With classifier-free guidance the conditional branch (prior tokens + glyphs) and the
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
    /// One image being denoised: its conditions and its solver (noise, schedule, sampler state), advanced one model
    /// evaluation at a time by <see cref="Step"/>. Several jobs (different requests, at different steps, with different
    /// samplers) can share one model run.
    /// </summary>
    public sealed class Job
    {
        internal Job(FlowSolver solver, long[] prior, long[] glyphs, float[]? glyphImage, double cfg)
        {
            Solver = solver; Prior = prior; Glyphs = glyphs; GlyphImage = glyphImage; Cfg = cfg;
        }

        /// <summary>The current state; once <see cref="Finished"/>, the image.</summary>
        public float[] X => Solver.X;
        public FlowSolver Solver { get; }
        internal long[] Prior { get; }
        internal long[] Glyphs { get; }
        internal float[]? GlyphImage { get; }
        public double Cfg { get; }
        public bool Guided => Cfg != 1.0;
        /// <summary>Model evaluations done so far.</summary>
        public int Done => Solver.Done;
        /// <summary>Model evaluations in all (schedule steps for Euler and DPM-Solver++(2M), 2·steps − 1 for Heun).</summary>
        public int Steps => Solver.Evaluations;
        public bool Finished => Solver.Finished;
        /// <summary>Model rows this job needs per step: 2 with guidance (conditional + unconditional), else 1.</summary>
        public int Rows => Guided ? 2 : 1;
    }

    /// <summary>Starts a job: seeded noise at t = 1, the schedule and the sampler (<see cref="FlowSamplers"/>, default Euler).</summary>
    public Job Start(int[] targetTokens, int targetGrid, byte[] glyphBytes, ulong seed, int steps, double cfg, double shift, string sampler = FlowSamplers.Euler)
    {
        int s = shape.ImageSize, g = shape.TokenGrid;
        var solver = FlowSamplers.Create(sampler, Gaussian(3 * s * s, SplitMix64.Mix(seed, 0xDEC0DE)), FlowSchedule.Times(steps, shift));
        return new Job(solver, ModelInputs.PriorFromTarget(targetTokens, targetGrid, g),
            ModelInputs.GlyphIds(glyphBytes, shape.MaxGlyphs), GlyphImage(targetTokens, targetGrid, glyphBytes), cfg);
    }

    /// <param name="batchedCfg">True forces the two CFG branches into one batch, false into two passes (for benchmarks);
    /// null (the default) uses <see cref="CfgBatching"/>, measured on this decoder's device at the first guided step.</param>
    public float[] Sample(int[] targetTokens, int targetGrid, byte[] glyphBytes, ulong seed, int steps, double cfg, double shift,
        bool? batchedCfg = null, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default, string sampler = FlowSamplers.Euler)
    {
        var job = Start(targetTokens, targetGrid, glyphBytes, seed, steps, cfg, shift, sampler);
        while (!job.Finished)
        {
            cancel.ThrowIfCancellationRequested();
            Step([job], batchedCfg);
            progress?.Report(new GenerationProgress("decoder", job.Done, job.Steps));
        }
        return job.X;
    }

    /// <summary>
    /// How this decoder runs the two CFG branches: measured once, at the first guided step, on that step's own inputs
    /// (one batch with both branches vs two passes, alternating, best of several), and kept for the decoder's life.
    /// Null until a guided step has run. The choice only ever takes the batch when it is not slower; when the two ways
    /// give different bytes (a device whose kernels depend on the batch size) the two-pass way is kept regardless, so a
    /// seed's image never depends on a timing.
    /// </summary>
    public CfgBatchingChoice? CfgBatching { get; private set; }

    /// <summary>What <see cref="CfgBatching"/> measured: seconds per evaluation each way, and whether the two agree bit for bit.</summary>
    public sealed record CfgBatchingChoice(bool Batched, double BatchedSeconds, double TwoPassSeconds, bool Identical)
    {
        public double Speedup => TwoPassSeconds / BatchedSeconds;
    }

    private readonly object _cfgLock = new();

    /// <summary>
    /// Advances every job by one model evaluation: each job's conditional row and, with guidance, its unconditional row
    /// (no prior, no glyphs), each at the state and time its solver asks for. The rows run as one batch, or, when the
    /// decoder measured that to be slower (<see cref="CfgBatching"/>), as two batches: conditional rows, then unconditional.
    /// </summary>
    /// <param name="batchedCfg">Force one batch (true) or two passes (false); null: the measured choice.</param>
    public void Step(IReadOnlyList<Job> jobs, bool? batchedCfg = null)
    {
        foreach (var job in jobs)
            if (job.Finished) throw new InvalidOperationException("A finished decoder job was stepped again.");
        var guided = jobs.Where(j => j.Guided).ToList();
        bool batched = batchedCfg ?? (guided.Count == 0 || ChooseCfgBatching(guided[0]).Batched);
        var conditional = jobs.Select(j => Row(j, unconditional: false)).ToList();
        float[][] vc, vu;
        if (batched)
        {
            var rows = new List<ModelRow>();
            foreach (var job in jobs) { rows.Add(Row(job, false)); if (job.Guided) rows.Add(Row(job, true)); }
            var v = Run(rows);
            vc = new float[jobs.Count][]; vu = new float[jobs.Count][];
            int r = 0;
            for (int i = 0; i < jobs.Count; i++) { vc[i] = v[r++]; if (jobs[i].Guided) vu[i] = v[r++]; }
        }
        else
        {
            vc = Run(conditional);
            float[][] u = guided.Count == 0 ? [] : Run(guided.Select(j => Row(j, true)).ToList());
            vu = new float[jobs.Count][];
            for (int i = 0, g = 0; i < jobs.Count; i++) if (jobs[i].Guided) vu[i] = u[g++];
        }
        for (int i = 0; i < jobs.Count; i++)
            jobs[i].Solver.Accept(jobs[i].Guided ? Guide(vc[i], vu[i], jobs[i].Cfg) : vc[i]);
    }

    private readonly record struct ModelRow(float[] X, float T, long[] Prior, long[] Glyphs, float[]? GlyphImage);

    private ModelRow Row(Job job, bool unconditional) => unconditional
        ? new(job.Solver.EvaluationInput, (float)job.Solver.EvaluationTime, _nullPrior, _noGlyphs, job.GlyphImage is null ? null : new float[job.GlyphImage.Length])
        : new(job.Solver.EvaluationInput, (float)job.Solver.EvaluationTime, job.Prior, job.Glyphs, job.GlyphImage);

    /// <summary>Measures batched vs two-pass CFG once, on this job's current inputs (the job itself is not advanced).</summary>
    private CfgBatchingChoice ChooseCfgBatching(Job job)
    {
        lock (_cfgLock)
        {
            if (CfgBatching is { } known) return known;
            ModelRow cond = Row(job, false), uncond = Row(job, true);
            float[][] both = Run([cond, uncond]), separate = [Run([cond])[0], Run([uncond])[0]]; // warm both shapes
            bool identical = both[0].AsSpan().SequenceEqual(separate[0]) && both[1].AsSpan().SequenceEqual(separate[1]);
            double batchedBest = double.MaxValue, twoPassBest = double.MaxValue;
            for (int round = 0; round < 5; round++)
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                Run([cond, uncond]);
                batchedBest = Math.Min(batchedBest, watch.Elapsed.TotalSeconds);
                watch.Restart();
                Run([cond]); Run([uncond]);
                twoPassBest = Math.Min(twoPassBest, watch.Elapsed.TotalSeconds);
            }
            CfgBatching = new CfgBatchingChoice(identical && batchedBest <= twoPassBest, batchedBest, twoPassBest, identical);
            return CfgBatching;
        }
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

    private float[][] Run(IReadOnlyList<ModelRow> rows)
    {
        int b = rows.Count, s = shape.ImageSize, g = shape.TokenGrid, pixels = 3 * s * s;
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["x_t"] = HostTensor.Create(rows.SelectMany(r => r.X).ToArray(), b, 3, s, s),
            ["t"] = HostTensor.Create(rows.Select(r => r.T).ToArray(), b),
            ["prior"] = HostTensor.Create(rows.SelectMany(r => r.Prior).ToArray(), b, g, g),
            ["glyphs"] = HostTensor.Create(rows.SelectMany(r => r.Glyphs).ToArray(), b, shape.MaxGlyphs),
        };
        if (shape.GlyphImage) feeds["glyph_image"] = HostTensor.Create(rows.SelectMany(r => r.GlyphImage!).ToArray(), b, 1, s, s);
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
