using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Models.Layers;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)). (..., D) → (..., D), hidden width F.</summary>
public sealed class SwiGlu : nn.Module<Tensor, Tensor>
{
    public readonly Linear gate, up, down;

    public SwiGlu(long dim, long hidden) : base(nameof(SwiGlu))
    {
        gate = nn.Linear(dim, hidden, hasBias: false);
        up = nn.Linear(dim, hidden, hasBias: false);
        down = nn.Linear(hidden, dim, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down.forward(nn.functional.silu(gate.forward(x)) * up.forward(x)).MoveToOuterDisposeScope();
    }
}
