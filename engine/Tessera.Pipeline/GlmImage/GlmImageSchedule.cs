namespace Tessera.Pipeline.GlmImage;

/// <summary>
/// GLM-Image's flow-matching schedule (diffusers' FlowMatchEulerDiscreteScheduler as the GLM-Image pipeline sets it):
/// N timesteps t_i = trunc(linspace(T, 1, N + 1)[i]) for i &lt; N, σ_i = t_i / T; with dynamic shifting,
/// μ = √(image_seq_len / base_image_seq_len) · max_shift + base_shift and σ'_i = μ / (μ + (1/σ_i − 1)) (linear) or
/// e^μ / (e^μ + (1/σ_i − 1)) (exponential); otherwise σ' = s·σ / (1 + (s − 1)·σ). The DiT is given σ'·T − 1; the
/// Euler step is x ← x + (σ'_{i+1} − σ'_i) · v with σ'_N = 0.
/// </summary>
public sealed record GlmImageSchedule(double[] Sigmas, double[] DitTimesteps)
{
    public static GlmImageSchedule Create(int steps, int imageSeqLen, GlmImageSchedulerSettings s)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "At least one step.");
        int trainSteps = s.TrainTimesteps;
        var sigmas = new double[steps + 1];
        double mu = Math.Sqrt((double)imageSeqLen / s.BaseImageSeqLen) * s.MaxShift + s.BaseShift;
        for (int i = 0; i < steps; i++)
        {
            double t = Math.Truncate(trainSteps + (1.0 - trainSteps) * i / steps);    // linspace(T, 1, N + 1)[i], cast to an integer
            double sigma = t / trainSteps;
            sigmas[i] = s.DynamicShifting
                ? (s.TimeShiftType == "exponential" ? Math.Exp(mu) / (Math.Exp(mu) + (1 / sigma - 1)) : mu / (mu + (1 / sigma - 1)))
                : s.Shift * sigma / (1 + (s.Shift - 1) * sigma);
        }
        sigmas[steps] = 0;
        return new GlmImageSchedule(sigmas, sigmas.Take(steps).Select(x => x * trainSteps - 1).ToArray());
    }
}
