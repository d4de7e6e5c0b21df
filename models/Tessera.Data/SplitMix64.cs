namespace Tessera.Data;

/// <summary>
/// A tiny, fully specified PRNG (SplitMix64). Used instead of <see cref="Random"/> so that a dataset is the same
/// bytes on every .NET version: the sample at (seed, split, index) never changes.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform integer in [0, n).</summary>
    public int NextInt(int n) => (int)(Next() % (ulong)n);

    /// <summary>Uniform double in [0, 1).</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A seed derived from several values (order matters).</summary>
    public static ulong Mix(params ulong[] values)
    {
        var m = new SplitMix64(0x5EED);
        ulong h = 0;
        foreach (var v in values) { m._state ^= v + h; h = m.Next(); }
        return h;
    }
}
