using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Layers;

/// <summary>
/// Sinusoidal embedding of a diffusion time t in [0, 1] followed by an MLP (as in DiT): (B) → (B, D).
/// Frequencies: exp(-ln(10000) * i / half), i &lt; half, applied to t * 1000.
/// </summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1, fc2;

    public TimestepEmbedding(long dim, int frequencyDim = 128) : base(nameof(TimestepEmbedding))
    {
        FrequencyDim = frequencyDim;
        fc1 = nn.Linear(frequencyDim, dim);
        fc2 = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public int FrequencyDim { get; }

    public static Tensor Sinusoid(Tensor t, int dim)
    {
        using var scope = NewDisposeScope();
        int half = dim / 2;
        var freqs = exp(-Math.Log(10000.0) * arange(0, half, dtype: float32, device: t.device) / half); // (half)
        var args = (t.to(float32) * 1000f).unsqueeze(-1) * freqs;                                        // (B, half)
        return cat([args.cos(), args.sin()], -1).MoveToOuterDisposeScope();                               // (B, dim)
    }

    public override Tensor forward(Tensor t)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.silu(fc1.forward(Sinusoid(t, FrequencyDim)))).MoveToOuterDisposeScope();
    }
}
