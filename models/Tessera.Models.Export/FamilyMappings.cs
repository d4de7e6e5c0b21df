using System.Runtime.CompilerServices;
using Tessera.Export;
using Tessera.Models.Layers;
using Tessera.Onnx;
using static TorchSharp.torch;

namespace Tessera.Models.Export;

/// <summary>
/// ONNX mappings of the model family's own layers, registered into the generic exporter's open registry
/// (<see cref="ModuleMappings"/>) the same way any user registers theirs. The stage exporters call
/// <see cref="EnsureRegistered"/>; so does anything that exports these layers alone.
/// </summary>
public static class FamilyMappings
{
    private static int _registered;

    // On purpose in a library: loading this assembly registers the family's mappings, so an export of these layers
    // works without a call first; EnsureRegistered stays for callers that want it explicit.
#pragma warning disable CA2255
    [ModuleInitializer]
    internal static void OnLoad() => EnsureRegistered();
#pragma warning restore CA2255

    /// <summary>Registers the mappings (once; later calls do nothing).</summary>
    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        // x * rsqrt(mean(x^2) + eps) * w  (ONNX Runtime fuses this pattern into SimplifiedLayerNormalization)
        ModuleMappings.Register<RmsNorm>((ctx, n, x) =>
        {
            var variance = ctx.MeanLast(ctx.Mul(x[0], x[0]));
            var normed = ctx.Div(x[0], ctx.Op("Sqrt", ctx.Add(variance, ctx.F32((float)n.Eps))));
            return ctx.Mul(normed, ctx.Weight("weight", n.weight));
        });
        ModuleMappings.Register<SwiGlu>((ctx, s, x) =>
        {
            var gated = ctx.Mul(ctx.Silu(ctx.Module("gate", s.gate, x[0])), ctx.Module("up", s.up, x[0]));
            return ctx.Module("down", s.down, gated);
        });
        ModuleMappings.Register<TimestepEmbedding>((ctx, te, x) =>
        {
            var freq = TimestepFrequencies(ctx, x[0], te.FrequencyDim);
            return ctx.Module("fc2", te.fc2, ctx.Silu(ctx.Module("fc1", te.fc1, freq)));
        });
    }

    /// <summary>Sinusoidal features of t (B) as in <see cref="TimestepEmbedding.Sinusoid"/>: [cos(1000 t f), sin(1000 t f)].</summary>
    public static OnnxValue TimestepFrequencies(ExportContext ctx, OnnxValue t, int dim)
    {
        int half = dim / 2;
        var freqs = Enumerable.Range(0, half).Select(i => (float)Math.Exp(-Math.Log(10000.0) * i / half)).ToArray();
        var args = ctx.Mul(ctx.Unsqueeze(ctx.Mul(t, ctx.F32(1000f)), -1), ctx.Graph.Constant<float>(freqs, half)); // (B, half)
        return ctx.Concat(-1, ctx.Op("Cos", args), ctx.Op("Sin", args));
    }
}
