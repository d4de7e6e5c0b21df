using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Tessera.Cli.Bench;

/// <summary>
/// The machine's memory read bandwidth, measured: every core streams its share of a buffer far larger than the
/// caches (summing it with 256-bit loads, so the arithmetic is never the limit); the best of several passes counts.
/// </summary>
public static class MemoryBandwidth
{
    public static unsafe double MeasureReadGBps(long bytes = 1L << 30, int passes = 5, int? threads = null)
    {
        int workers = threads ?? Environment.ProcessorCount;
        long count = bytes / sizeof(long) / 4 * 4;
        var buffer = (long*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(long)), 64);
        try
        {
            // Touch every page (and give it non-zero content) before timing.
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                var (start, end) = Slice(count, workers, w);
                for (long i = start; i < end; i++) buffer[i] = i;
            });
            double best = 0;
            long sink = 0;
            for (int p = 0; p < passes; p++)
            {
                var sums = new long[workers];
                long t0 = Stopwatch.GetTimestamp();
                Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
                {
                    var (start, end) = Slice(count, workers, w);
                    var acc0 = Vector256<long>.Zero;
                    var acc1 = Vector256<long>.Zero;
                    long i = start;
                    for (; i + 8 <= end; i += 8)
                    {
                        acc0 += Vector256.Load(buffer + i);
                        acc1 += Vector256.Load(buffer + i + 4);
                    }
                    long s = Vector256.Sum(acc0 + acc1);
                    for (; i < end; i++) s += buffer[i];
                    sums[w] = s;
                });
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                sink += sums.Sum();
                best = Math.Max(best, count * sizeof(long) / seconds / 1e9);
            }
            GC.KeepAlive(sink);
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    private static (long Start, long End) Slice(long count, int workers, int w)
    {
        long per = count / workers / 8 * 8;
        long start = w * per;
        return (start, w == workers - 1 ? count : start + per);
    }
}
