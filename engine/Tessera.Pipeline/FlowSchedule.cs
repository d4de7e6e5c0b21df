namespace Tessera.Pipeline;

/// <summary>
/// Time points for the flow-matching Euler sampler, from t = 1 (noise) to t = 0 (image), warped by a shift s:
/// t' = s·t / (1 + (s − 1)·t), which spends more steps at high noise where layout is decided (SD3 / CogView4 style).
/// </summary>
public static class FlowSchedule
{
    public static double[] Times(int steps, double shift)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "At least one denoising step is needed.");
        if (shift <= 0) throw new ArgumentOutOfRangeException(nameof(shift), shift, "The shift must be positive.");
        var times = new double[steps + 1];
        for (int i = 0; i <= steps; i++)
        {
            double t = 1.0 - (double)i / steps;
            times[i] = shift * t / (1 + (shift - 1) * t);
        }
        return times;
    }
}
