using TorchSharp;
using static TorchSharp.torch;

namespace Tessera.Models.Layers;

/// <summary>RMSNorm: x / sqrt(mean(x^2) + eps) * weight, over the last dimension. (..., D) → (..., D).</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    public readonly TorchSharp.Modules.Parameter weight;

    public RmsNorm(long dim, double eps = 1e-6) : base(nameof(RmsNorm))
    {
        Dim = dim;
        Eps = eps;
        weight = nn.Parameter(ones(dim));
        RegisterComponents();
    }

    public long Dim { get; }
    public double Eps { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var variance = x.pow(2).mean([-1L], keepdim: true);
        return (x * rsqrt(variance + Eps) * weight).MoveToOuterDisposeScope();
    }
}
