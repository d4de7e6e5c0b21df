using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>
/// ONNX mappings of TorchSharp's stock layers, honouring each module's settings. Registered into
/// <see cref="ModuleMappings"/> the first time the registry is used; a registration of your own for the same type
/// replaces the stock one. Modules whose forward differs between training and evaluation (dropout) are exported
/// as they run in evaluation mode, and refuse to export while in training mode.
/// </summary>
public static class StockMappings
{
    internal static void RegisterInto()
    {
        // y = x W^T + b   (W: (out, in); a Linear without bias has no Add)
        ModuleMappings.Register<Linear>((ctx, l, x) =>
        {
            var y = ctx.MatMul(x[0], ctx.Weight("weight", l.weight!.t()));
            return l.bias is null ? y : ctx.Add(y, ctx.Weight("bias", l.bias));
        });
        // ids → rows of the table. padding_idx changes only training (its row gets no gradient), so eval is a plain Gather.
        ModuleMappings.Register<Embedding>((ctx, m, x) => ctx.Op("Gather", ctx.Weight("weight", m.weight!), x[0]));
        ModuleMappings.Register<LayerNorm>((ctx, n, x) => LayerNorm(ctx, n, x[0]));
        ModuleMappings.Register<GroupNorm>((ctx, n, x) => GroupNorm(ctx, n, x[0]));
        ModuleMappings.Register<GELU>((ctx, m, x) => Gelu(ctx, x[0], tanh: m.approximate == GELU.Approximate.tanh));
        ModuleMappings.Register<SiLU>((ctx, _, x) => ctx.Silu(x[0]));
        ModuleMappings.Register<ReLU>((ctx, _, x) => ctx.Op("Relu", x[0]));
        ModuleMappings.Register<LeakyReLU>((ctx, m, x) => ctx.Op("LeakyRelu", [x[0]], OnnxAttribute.Float("alpha", (float)m.negative_slope)));
        ModuleMappings.Register<Tanh>((ctx, _, x) => ctx.Op("Tanh", x[0]));
        ModuleMappings.Register<Sigmoid>((ctx, _, x) => ctx.Sigmoid(x[0]));
        ModuleMappings.Register<Softmax>((ctx, m, x) => ctx.Softmax(x[0], m.dim));
        ModuleMappings.Register<LogSoftmax>((ctx, m, x) => ctx.Op("LogSoftmax", [x[0]], OnnxAttribute.Int("axis", m.dim)));
        ModuleMappings.Register<Identity>((_, _, x) => x[0]);
        ModuleMappings.Register<Dropout>((ctx, m, x) => EvalIdentity(ctx, m, x[0]));
        ModuleMappings.Register<Dropout1d>((ctx, m, x) => EvalIdentity(ctx, m, x[0]));
        ModuleMappings.Register<Dropout2d>((ctx, m, x) => EvalIdentity(ctx, m, x[0]));
        ModuleMappings.Register<Dropout3d>((ctx, m, x) => EvalIdentity(ctx, m, x[0]));
        ModuleMappings.Register<AlphaDropout>((ctx, m, x) => EvalIdentity(ctx, m, x[0]));
        ModuleMappings.Register<Convolution>((ctx, c, x) => Conv(ctx, c, x[0]));
        // Containers: children applied in order (Sequential's forward; the `foreach (var layer in layers) x = layer.call(x)`
        // loop of a ModuleList or ModuleDict). Their children's outputs may be several values, fed on as the next inputs.
        ModuleMappings.RegisterMulti<Sequential>((ctx, m, x) => Chain(ctx, m.named_children(), x));
        ModuleMappings.Register(typeof(ModuleList<>), (ctx, m, x) => Chain(ctx, ListItems((System.Collections.IEnumerable)m), x));
        ModuleMappings.Register(typeof(ModuleDict<>), (ctx, m, x) => Chain(ctx, DictItems(m), x));
        ModuleMappings.RegisterMulti<MultiheadAttention>(MultiheadAttentionExport.FromInputs);
    }

    private static OnnxValue[] Chain(ExportContext ctx, IEnumerable<(string Name, nn.Module Child)> children, OnnxValue[] x)
    {
        foreach (var (name, child) in children) x = ctx.ModuleOutputs(name, child, x);
        return x;
    }

    // A container's items in order, by enumeration (named_children() lists them only once the container is
    // registered under a parent, and a container may be exported as the root).
    private static IEnumerable<(string, nn.Module)> ListItems(System.Collections.IEnumerable list)
    {
        int i = 0;
        foreach (var item in list) yield return ($"{i++}", (nn.Module)item);
    }

    private static IEnumerable<(string, nn.Module)> DictItems(nn.Module dict)
    {
        // ModuleDict<T>.items(): IEnumerator<(string, T)> in insertion order (its non-generic enumerator is not implemented).
        var items = (System.Collections.IEnumerator)dict.GetType().GetMethod("items")!.Invoke(dict, null)!;
        while (items.MoveNext())
        {
            var pair = (System.Runtime.CompilerServices.ITuple)items.Current!;
            yield return ((string)pair[0]!, (nn.Module)pair[1]!);
        }
    }

    private static OnnxValue EvalIdentity(ExportContext ctx, nn.Module m, OnnxValue x) => m.training
        ? throw new InvalidOperationException($"Module '{ctx.ModulePath}' ({m.GetType().Name}) is in training mode, where it drops activations at random; call eval() on the model before exporting.")
        : x;

    /// <summary>
    /// LayerNormalization over the trailing <c>normalized_shape</c> axes (axis = -rank of it). Without affine weights
    /// the scale is 1; without a bias (<c>bias: false</c>) the bias input is omitted.
    /// </summary>
    public static OnnxValue LayerNorm(ExportContext ctx, LayerNorm n, OnnxValue x)
    {
        long[] shape = n.normalized_shape;
        var scale = n.weight is null ? ctx.Weight("unit_scale", ones(shape)) : ctx.Weight("weight", n.weight);
        var inputs = n.bias is null ? new[] { x, scale } : [x, scale, ctx.Weight("bias", n.bias)];
        return ctx.Op("LayerNormalization", inputs, OnnxAttribute.Int("axis", -shape.Length), OnnxAttribute.Float("epsilon", (float)n.eps));
    }

    /// <summary>
    /// GroupNorm over (N, C, …): statistics per group of C / groups channels and all positions, then the per-channel
    /// affine. Written in primitive ops (Reshape, ReduceMean) so every runtime runs it, whatever its GroupNormalization support.
    /// </summary>
    public static OnnxValue GroupNorm(ExportContext ctx, GroupNorm n, OnnxValue x)
    {
        var grouped = ctx.Reshape(x, 0, n.num_groups, -1);                                        // (N, G, C/G · spatial)
        var mean = ctx.Op("ReduceMean", [grouped, ctx.I64(-1)], OnnxAttribute.Int("keepdims", 1));
        var centred = ctx.Sub(grouped, mean);
        var variance = ctx.Op("ReduceMean", [ctx.Mul(centred, centred), ctx.I64(-1)], OnnxAttribute.Int("keepdims", 1));
        var normed = ctx.Div(centred, ctx.Op("Sqrt", ctx.Add(variance, ctx.F32((float)n.eps))));
        if (!n.affine || n.weight is null) return ctx.Op("Reshape", normed, ctx.Op("Shape", x));
        // The affine per channel on (N, C, positions), whatever the spatial rank, then back to x's shape.
        long channels = n.weight.shape[0];
        using var w = n.weight.detach().view(channels, 1);
        var y = ctx.Mul(ctx.Reshape(normed, 0, channels, -1), ctx.Weight("weight", w));
        if (n.bias is not null)
        {
            using var b = n.bias.detach().view(channels, 1);
            y = ctx.Add(y, ctx.Weight("bias", b));
        }
        return ctx.Op("Reshape", y, ctx.Op("Shape", x));
    }

    /// <summary>GELU, exact (erf) or the tanh approximation (ONNX Gelu, opset 20).</summary>
    public static OnnxValue Gelu(ExportContext ctx, OnnxValue x, bool tanh) =>
        ctx.Op("Gelu", [x], OnnxAttribute.String("approximate", tanh ? "tanh" : "none"));

    /// <summary>Conv / ConvTranspose in 1, 2 or 3 dimensions (ONNX's weight layouts equal TorchSharp's).</summary>
    private static OnnxValue Conv(ExportContext ctx, Convolution c, OnnxValue x)
    {
        if (c.padding_mode != PaddingModes.Zeros)
            throw new NotSupportedException($"Convolution '{ctx.ModulePath}' uses padding_mode {c.padding_mode}; the exporter writes zero padding only. Pad the input explicitly (e.g. with a registered mapping of your own) or use PaddingModes.Zeros.");
        int dims = c.kernel_size.Length;
        long[] pads = c.padding_type switch
        {
            null => [.. c.padding!, .. c.padding!],
            Padding.Valid => new long[2 * dims],
            // 'same' as PyTorch does it: total = dilation * (kernel - 1), the odd element on the end side.
            Padding.Same => SamePads(c),
            var p => throw new NotSupportedException($"Convolution '{ctx.ModulePath}': padding {p} is not exported."),
        };
        var attrs = new List<Tessera.Onnx.Proto.AttributeProto>
        {
            OnnxAttribute.Ints("kernel_shape", c.kernel_size),
            OnnxAttribute.Ints("strides", c.stride),
            OnnxAttribute.Ints("pads", pads),
            OnnxAttribute.Ints("dilations", c.dilation),
            OnnxAttribute.Int("group", c.groups),
        };
        if (c.transposed) attrs.Add(OnnxAttribute.Ints("output_padding", c.output_padding));
        var inputs = new List<OnnxValue> { x, ctx.Weight("weight", c.weight!) };
        if (c.bias is not null) inputs.Add(ctx.Weight("bias", c.bias));
        return ctx.Op(c.transposed ? "ConvTranspose" : "Conv", inputs.ToArray(), attrs.ToArray());
    }

    private static long[] SamePads(Convolution c)
    {
        int dims = c.kernel_size.Length;
        var pads = new long[2 * dims];
        for (int i = 0; i < dims; i++)
        {
            long total = c.dilation[i] * (c.kernel_size[i] - 1);
            pads[i] = total / 2;
            pads[dims + i] = total - total / 2;
        }
        return pads;
    }
}
