using System.Diagnostics;

namespace Tessera.Cli.Bench;

/// <summary>Small statistics shared by the benchmarks.</summary>
public static class BenchStats
{
    public static double Median(IEnumerable<double> values)
    {
        var a = values.Order().ToArray();
        if (a.Length == 0) throw new ArgumentException("No values to take the median of.");
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>Runs <paramref name="run"/> <paramref name="n"/> times (after <paramref name="warmups"/> unrecorded runs); median wall time in seconds.</summary>
    public static double MedianSeconds(int n, Action run, int warmups = 0)
    {
        for (int i = 0; i < warmups; i++) run();
        var times = new double[n];
        for (int i = 0; i < n; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        return Median(times);
    }
}
