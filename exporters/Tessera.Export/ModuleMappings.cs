using Tessera.Models.Layers;
using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>
/// The ONNX mapping of every module type the exporter knows, in one place. Each entry turns a module and its input
/// values into output values using ONNX ops, reading the module's weights. Composite modules call
/// <see cref="ExportContext.Module"/> for their children, so node and weight names follow the module tree.
/// Attention and the model-level composites (AR with KV cache, DiT, VQ encoder) are in their own files.
/// </summary>
public static class ModuleMappings
{
    public delegate OnnxValue Mapping(ExportContext ctx, nn.Module module, OnnxValue[] inputs);

    private static readonly Dictionary<Type, Mapping> Mappings = new()
    {
        // y = x W^T + b
        [typeof(Linear)] = (ctx, m, x) =>
        {
            var l = (Linear)m;
            var y = ctx.MatMul(x[0], ctx.Weight("weight", l.weight!.t()));
            return l.bias is null ? y : ctx.Add(y, ctx.Weight("bias", l.bias));
        },
        // ids → rows of the table
        [typeof(Embedding)] = (ctx, m, x) => ctx.Op("Gather", ctx.Weight("weight", ((Embedding)m).weight!), x[0]),
        [typeof(LayerNorm)] = (ctx, m, x) => LayerNorm(ctx, (LayerNorm)m, x[0]),
        // x * rsqrt(mean(x^2) + eps) * w  (ONNX Runtime fuses this pattern into SimplifiedLayerNormalization)
        [typeof(RmsNorm)] = (ctx, m, x) =>
        {
            var n = (RmsNorm)m;
            var variance = ctx.MeanLast(ctx.Mul(x[0], x[0]));
            var normed = ctx.Div(x[0], ctx.Op("Sqrt", ctx.Add(variance, ctx.F32((float)n.Eps))));
            return ctx.Mul(normed, ctx.Weight("weight", n.weight));
        },
        [typeof(SiLU)] = (ctx, _, x) => ctx.Silu(x[0]),
        [typeof(GELU)] = (ctx, m, x) => Gelu(ctx, x[0], tanh: false),
        [typeof(SwiGlu)] = (ctx, m, x) =>
        {
            var s = (SwiGlu)m;
            var gated = ctx.Mul(ctx.Silu(ctx.Module("gate", s.gate, x[0])), ctx.Module("up", s.up, x[0]));
            return ctx.Module("down", s.down, gated);
        },
        [typeof(Conv2d)] = (ctx, m, x) => Conv(ctx, (Convolution)m, x[0], transposed: false),
        [typeof(ConvTranspose2d)] = (ctx, m, x) => Conv(ctx, (Convolution)m, x[0], transposed: true),
        [typeof(Sequential)] = (ctx, m, x) =>
        {
            var y = x[0];
            foreach (var (name, child) in ((Sequential)m).named_children()) y = ctx.Module(name, child, y);
            return y;
        },
        [typeof(TimestepEmbedding)] = (ctx, m, x) =>
        {
            var te = (TimestepEmbedding)m;
            var freq = TimestepFrequencies(ctx, x[0], te.FrequencyDim);
            return ctx.Module("fc2", te.fc2, ctx.Silu(ctx.Module("fc1", te.fc1, freq)));
        },
    };

    /// <summary>Module types with a mapping (for documentation and tests).</summary>
    public static IReadOnlyCollection<Type> MappedTypes => Mappings.Keys;

    /// <summary>Exports <paramref name="module"/> at the current path; unknown types fail naming the path and type.</summary>
    public static OnnxValue Export(ExportContext ctx, nn.Module module, OnnxValue[] inputs) =>
        Mappings.TryGetValue(module.GetType(), out var map)
            ? map(ctx, module, inputs)
            : throw new UnmappedModuleException(ctx.ModulePath, module.GetType());

    /// <summary>LayerNormalization over the last axis; modules without affine weights get scale 1 and bias 0.</summary>
    public static OnnxValue LayerNorm(ExportContext ctx, LayerNorm n, OnnxValue x)
    {
        long d = n.normalized_shape[^1];
        var scale = n.weight is null ? ctx.Weight("unit_scale", ones(d)) : ctx.Weight("weight", n.weight);
        var bias = n.bias is null ? ctx.Weight("zero_bias", zeros(d)) : ctx.Weight("bias", n.bias);
        return ctx.Op("LayerNormalization", [x, scale, bias], OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", (float)n.eps));
    }

    /// <summary>GELU, exact (erf) or the tanh approximation (ONNX Gelu, opset 20).</summary>
    public static OnnxValue Gelu(ExportContext ctx, OnnxValue x, bool tanh) =>
        ctx.Op("Gelu", [x], OnnxAttribute.String("approximate", tanh ? "tanh" : "none"));

    /// <summary>Conv / ConvTranspose (ONNX's weight layouts equal TorchSharp's).</summary>
    private static OnnxValue Conv(ExportContext ctx, Convolution c, OnnxValue x, bool transposed)
    {
        if (c.padding_type is not null || c.padding_mode != PaddingModes.Zeros)
            throw new NotSupportedException($"Convolution '{ctx.ModulePath}': only explicit zero padding is exported.");
        var attrs = new List<Tessera.Onnx.Proto.AttributeProto>
        {
            OnnxAttribute.Ints("kernel_shape", c.kernel_size),
            OnnxAttribute.Ints("strides", c.stride),
            OnnxAttribute.Ints("pads", [.. c.padding, .. c.padding]),
            OnnxAttribute.Ints("dilations", c.dilation),
            OnnxAttribute.Int("group", c.groups),
        };
        if (transposed) attrs.Add(OnnxAttribute.Ints("output_padding", c.output_padding));
        var inputs = new List<OnnxValue> { x, ctx.Weight("weight", c.weight!) };
        if (c.bias is not null) inputs.Add(ctx.Weight("bias", c.bias));
        return ctx.Op(transposed ? "ConvTranspose" : "Conv", inputs.ToArray(), attrs.ToArray());
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
