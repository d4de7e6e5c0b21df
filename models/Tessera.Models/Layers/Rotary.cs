using static TorchSharp.torch;

namespace Tessera.Models.Layers;

/// <summary>
/// Rotary position embedding with partial rotary and multiple position axes (GLM-Image's MRoPE idea).
/// The first <c>rotaryDim = headDim * partial</c> channels of each head rotate; they are split into
/// <c>axes</c> equal sections, section a rotating by position axis a. Text tokens use the same position on every
/// axis (plain 1-D RoPE); image tokens use (temporal, row, column). Rotation pairs channel i with i + half
/// (the "rotate half" convention). Channels past rotaryDim pass through unchanged.
/// </summary>
public static class Rotary
{
    /// <summary>
    /// How many of the rotaryDim / 2 frequency pairs each position axis gets: an even split, the remainder going to
    /// the first axes (GLM's real width, 64 rotary channels over 3 axes, gives 11, 11, 10).
    /// </summary>
    public static int[] Sections(int rotaryDim, int axes)
    {
        if (rotaryDim % 2 != 0) throw new ArgumentException($"rotary dim {rotaryDim} must be even.");
        int half = rotaryDim / 2;
        return Enumerable.Range(0, axes).Select(a => half / axes + (a < half % axes ? 1 : 0)).ToArray();
    }

    /// <summary>
    /// cos and sin tables for positions (B, T, axes) → each (B, 1, T, rotaryDim) to broadcast over heads.
    /// Within each axis's section the frequencies are theta^(-2i/width), i &lt; width.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, int rotaryDim, int axes, double theta = 10000.0)
    {
        using var scope = NewDisposeScope();
        var widths = Sections(rotaryDim, axes);
        var sections = new List<Tensor>();
        for (int a = 0; a < axes; a++)
        {
            var inv = pow(theta, -arange(0, widths[a], dtype: float32, device: positions.device) * 2.0 / (widths[a] * 2)); // (width)
            var pos = positions.select(-1, a).to(float32).unsqueeze(-1); // (B, T, 1)
            sections.Add(pos * inv);                                       // (B, T, width)
        }
        var freqs = cat(sections, -1);                                     // (B, T, half)
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                    // (B, 1, T, rotaryDim)
        return (emb.cos().MoveToOuterDisposeScope(), emb.sin().MoveToOuterDisposeScope());
    }

    /// <summary>Applies the rotation to the first rotaryDim channels of x (B, H, T, Dh).</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin, int rotaryDim)
    {
        using var scope = NewDisposeScope();
        long headDim = x.shape[^1];
        var rot = x.narrow(-1, 0, rotaryDim);
        int half = rotaryDim / 2;
        var x1 = rot.narrow(-1, 0, half);
        var x2 = rot.narrow(-1, half, half);
        var rotated = cat([-x2, x1], -1);
        var outRot = rot * cos + rotated * sin;
        var result = rotaryDim == headDim ? outRot : cat([outRot, x.narrow(-1, rotaryDim, headDim - rotaryDim)], -1);
        return result.MoveToOuterDisposeScope();
    }
}
