using Tessera.Data;

namespace Tessera.Pipeline;

/// <summary>
/// Picks the next token from logits: temperature, then top-k, then top-p (nucleus), then a draw from a seeded
/// <see cref="SplitMix64"/>. Temperature 0 means greedy. Same seed and logits, same token, on every machine.
/// </summary>
public sealed class TokenSampler(double temperature, int topK, double topP, ulong seed)
{
    private SplitMix64 _rng = new(seed);

    public int Next(ReadOnlySpan<float> logits)
    {
        if (temperature <= 0) return ArgMax(logits);
        int n = logits.Length;
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var copy = logits.ToArray();
        // Stable sort by logit, descending (ties keep index order, so results do not depend on the sort's internals).
        Array.Sort(order, (a, b) => copy[b].CompareTo(copy[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int k = topK > 0 ? Math.Min(topK, n) : n;
        double max = copy[order[0]];
        var probs = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++) sum += probs[i] = Math.Exp((copy[order[i]] - max) / temperature);
        double cumulative = 0;
        int keep = k;
        for (int i = 0; i < k; i++)
        {
            cumulative += probs[i] / sum;
            if (cumulative >= topP) { keep = i + 1; break; }
        }
        double total = 0;
        for (int i = 0; i < keep; i++) total += probs[i];
        double u = _rng.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            u -= probs[i];
            if (u <= 0) return order[i];
        }
        return order[keep - 1];
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
