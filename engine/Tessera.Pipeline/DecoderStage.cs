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

    /// <param name="batchedCfg">False runs the two CFG branches as two passes (for benchmarks).</param>
    public float[] Sample(int[] targetTokens, int targetGrid, byte[] glyphBytes, ulong seed, int steps, double cfg, double shift,
        bool batchedCfg = true, IProgress<GenerationProgress>? progress = null, CancellationToken cancel = default)
    {
        int s = shape.ImageSize, g = shape.TokenGrid, pixels = 3 * s * s;
        bool guided = cfg != 1.0;
        var prior = ModelInputs.PriorFromTarget(targetTokens, targetGrid, g);
        var glyphs = ModelInputs.GlyphIds(glyphBytes, shape.MaxGlyphs);
        var nullPrior = Enumerable.Repeat((long)shape.CodebookSize, g * g).ToArray();
        var noGlyphs = new long[shape.MaxGlyphs];
        var glyphImage = GlyphImage(targetTokens, targetGrid, glyphBytes);
        var noGlyphImage = glyphImage is null ? null : new float[glyphImage.Length];

        var x = Gaussian(pixels, SplitMix64.Mix(seed, 0xDEC0DE));
        var times = FlowSchedule.Times(steps, shift);
        for (int i = 0; i < steps; i++)
        {
            cancel.ThrowIfCancellationRequested();
            float t = (float)times[i], dt = (float)(times[i + 1] - times[i]);
            float[] velocity;
            if (!guided) velocity = Run([x], t, [prior], [glyphs], [glyphImage])[0];
            else
            {
                float[][] v = batchedCfg
                    ? Run([x, x], t, [prior, nullPrior], [glyphs, noGlyphs], [glyphImage, noGlyphImage])
                    : [Run([x], t, [prior], [glyphs], [glyphImage])[0], Run([x], t, [nullPrior], [noGlyphs], [noGlyphImage])[0]];
                velocity = new float[pixels];
                float w = (float)cfg;
                for (int p = 0; p < pixels; p++) velocity[p] = v[1][p] + w * (v[0][p] - v[1][p]);
            }
            for (int p = 0; p < pixels; p++) x[p] += dt * velocity[p];
            progress?.Report(new GenerationProgress("decoder", i + 1, steps));
        }
        return x;
    }

    private float[][] Run(float[][] xs, float t, long[][] priors, long[][] glyphs, float[]?[] glyphImages)
    {
        int b = xs.Length, s = shape.ImageSize, g = shape.TokenGrid, pixels = 3 * s * s;
        var feeds = new Dictionary<string, ITensorValue>
        {
            ["x_t"] = HostTensor.Create(xs.SelectMany(a => a).ToArray(), b, 3, s, s),
            ["t"] = HostTensor.Create(Enumerable.Repeat(t, b).ToArray(), b),
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
