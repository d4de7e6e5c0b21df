using System.Runtime.CompilerServices;
using Tessera.Abstractions;
using Tessera.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Tessera.Export;

/// <summary>How a <see cref="MultiheadAttention"/> call is exported.</summary>
public sealed record MultiheadAttentionOptions
{
    /// <summary>Inputs and output are (batch, sequence, embed) instead of TorchSharp's (sequence, batch, embed).</summary>
    public bool BatchFirst { get; init; }

    /// <summary>Adds the causal mask (query i sees keys up to i, aligned at the end when the key sequence is longer).</summary>
    public bool Causal { get; init; }

    /// <summary>bool (batch, key sequence): true where a key is padding and must be ignored (PyTorch's meaning).</summary>
    public OnnxValue? KeyPaddingMask { get; init; }

    /// <summary>
    /// (query sequence, key sequence) or (batch·heads, query, key), added to the scores as float, which is what
    /// TorchSharp's module (libtorch's C++ MultiheadAttention) does with <c>attn_mask</c>: a float mask of 0 / −inf
    /// blocks; a bool mask adds 1 where true and does <em>not</em> block (unlike PyTorch's Python module).
    /// </summary>
    public OnnxValue? AttentionMask { get; init; }
}

/// <summary>
/// ONNX export of TorchSharp's <see cref="MultiheadAttention"/> (libtorch's module): packed or separate input
/// projections, scaled dot-product attention with key-padding, boolean, additive and causal masks, output projection.
/// Outputs: attention output in the input layout, and the attention weights averaged over heads (batch, query, key),
/// as <c>forward</c> returns them with <c>need_weights</c>. The module does not expose its head count, so it is found
/// once per module by running it next to this mapping's own arithmetic for each divisor of the embedding width.
/// </summary>
public static class MultiheadAttentionExport
{
    private static readonly ConditionalWeakTable<MultiheadAttention, StrongBox<int>> HeadCounts = new();

    /// <summary>The registry's mapping: inputs (query, key, value, [key_padding_mask], [attn_mask]) in TorchSharp's
    /// (sequence, batch, embed) layout, as <c>forward</c> takes them (see <see cref="MultiheadAttentionOptions"/> for
    /// the masks' meaning); <see cref="OnnxValue.None"/> skips an optional mask.</summary>
    internal static OnnxValue[] FromInputs(ExportContext ctx, MultiheadAttention m, OnnxValue[] x)
    {
        if (x.Length is < 3 or > 5)
            throw new ArgumentException($"MultiheadAttention '{ctx.ModulePath}' takes query, key, value and optionally key_padding_mask and attn_mask; got {x.Length} inputs.");
        OnnxValue? Optional(int i) => x.Length > i && x[i].Name.Length > 0 ? x[i] : null;
        var (y, w) = Export(ctx, m, x[0], x[1], x[2], new MultiheadAttentionOptions { KeyPaddingMask = Optional(3), AttentionMask = Optional(4) });
        return [y, w];
    }

    /// <summary>Exports one call of <paramref name="m"/> (already inside its module path).</summary>
    public static (OnnxValue Output, OnnxValue Weights) Export(ExportContext ctx, MultiheadAttention m, OnnxValue query, OnnxValue key, OnnxValue value, MultiheadAttentionOptions options)
    {
        if (m.training)
            throw new InvalidOperationException($"MultiheadAttention '{ctx.ModulePath}' is in training mode (attention dropout); call eval() on the model before exporting.");
        var w = Weights(ctx, m);
        int heads = Heads(ctx, m, w);
        long embed = w.OutWeight.shape[0], headDim = embed / heads;

        if (!options.BatchFirst)
        {
            query = ctx.Transpose(query, 1, 0, 2);  // (L, N, E) → (N, L, E)
            key = ctx.Transpose(key, 1, 0, 2);
            value = ctx.Transpose(value, 1, 0, 2);
        }
        OnnxValue Project(string name, OnnxValue input, Tensor weight, Tensor? bias)
        {
            var y = ctx.MatMul(input, ctx.Weight($"{name}_weight", weight.t()));
            if (bias is not null) y = ctx.Add(y, ctx.Weight($"{name}_bias", bias));
            return ctx.Transpose(ctx.Reshape(y, 0, 0, heads, headDim), 0, 2, 1, 3); // (N, H, T, Dh)
        }
        var q = Project("q_proj", query, w.Q, w.QBias);
        var k = Project("k_proj", key, w.K, w.KBias);
        var v = Project("v_proj", value, w.V, w.VBias);
        var scores = ctx.Mul(ctx.MatMul(q, ctx.Transpose(k, 0, 1, 3, 2)), ctx.F32((float)(1.0 / Math.Sqrt(headDim)))); // (N, H, T, S)

        var negInf = ctx.F32(float.NegativeInfinity);
        OnnxValue PerBatchHead(OnnxValue mask)
        {
            // (T, S) or (N·H, T, S) → expanded to (N·H, T, S) → (N, H, T, S), so both ranks take one path.
            var scoresShape = ctx.Op("Shape", scores);
            var rows = ctx.Mul(ctx.Slice(scoresShape, 0, 1, 0), ctx.I64(heads));
            return ctx.Op("Reshape", ctx.Op("Expand", mask, ctx.Concat(0, rows, ctx.Slice(scoresShape, 2, 4, 0))), scoresShape);
        }
        if (options.AttentionMask is { } added) scores = ctx.Add(scores, PerBatchHead(ctx.Cast(added, TensorElementType.Float32)));
        if (options.KeyPaddingMask is { } padding) scores = ctx.Op("Where", ctx.Unsqueeze(padding, 1, 2), negInf, scores); // (N, 1, 1, S)
        if (options.Causal)
        {
            var t = ctx.Op("Squeeze", ctx.Slice(ctx.Op("Shape", q), 2, 3, 0), ctx.I64(0));
            var s = ctx.Op("Squeeze", ctx.Slice(ctx.Op("Shape", k), 2, 3, 0), ctx.I64(0));
            var one = ctx.Graph.Constant<long>([1]);
            var keyIndex = ctx.Unsqueeze(ctx.Op("Range", ctx.Graph.Constant<long>([0]), s, one), 0);          // (1, S)
            var queryIndex = ctx.Unsqueeze(ctx.Op("Range", ctx.Sub(s, t), s, one), 1);                         // (T, 1)
            scores = ctx.Op("Where", ctx.Op("Greater", keyIndex, queryIndex), negInf, scores);
        }
        var probs = ctx.Softmax(scores, -1);
        var y = ctx.Reshape(ctx.Transpose(ctx.MatMul(probs, v), 0, 2, 1, 3), 0, 0, embed);                    // (N, T, E)
        y = ctx.MatMul(y, ctx.Weight("out_proj.weight", w.OutWeight.t()));
        if (w.OutBias is not null) y = ctx.Add(y, ctx.Weight("out_proj.bias", w.OutBias));
        if (!options.BatchFirst) y = ctx.Transpose(y, 1, 0, 2);                                                 // (T, N, E)
        var averaged = ctx.Op("ReduceMean", [probs, ctx.I64(1)], OnnxAttribute.Int("keepdims", 0));          // (N, T, S)
        return (y, averaged);
    }

    private sealed record Projections(Tensor Q, Tensor K, Tensor V, Tensor? QBias, Tensor? KBias, Tensor? VBias, Tensor OutWeight, Tensor? OutBias);

    private static Projections Weights(ExportContext ctx, MultiheadAttention m)
    {
        var p = m.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        if (p.ContainsKey("bias_k") || p.ContainsKey("bias_v"))
            throw new NotSupportedException($"MultiheadAttention '{ctx.ModulePath}' was built with add_bias_kv; the exporter does not map it. Register a mapping of your own for this module.");
        var outWeight = p.GetValueOrDefault("out_proj.weight") ?? throw new NotSupportedException($"MultiheadAttention '{ctx.ModulePath}' has no out_proj.weight parameter (found: {string.Join(", ", p.Keys)}).");
        long e = outWeight.shape[0];
        p.TryGetValue("in_proj_bias", out var inBias);
        Tensor? BiasPart(int i) => inBias?.narrow(0, i * e, e);
        if (p.TryGetValue("in_proj_weight", out var packed))
            return new(packed.narrow(0, 0, e), packed.narrow(0, e, e), packed.narrow(0, 2 * e, e), BiasPart(0), BiasPart(1), BiasPart(2), outWeight, p.GetValueOrDefault("out_proj.bias"));
        return new(p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"], BiasPart(0), BiasPart(1), BiasPart(2), outWeight, p.GetValueOrDefault("out_proj.bias"));
    }

    /// <summary>The head count: the divisor of the embedding width for which this mapping's arithmetic reproduces the module.</summary>
    private static int Heads(ExportContext ctx, MultiheadAttention m, Projections w)
    {
        if (HeadCounts.TryGetValue(m, out var known)) return known.Value;
        long e = w.OutWeight.shape[0];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var generator = new Generator(20240501);
        var q = randn([3, 2, e], generator: generator);
        var kv = randn([4, 2, w.K.shape[1]], generator: generator);
        var expected = m.call(q, kv, kv, null, true, null).Item1;
        for (int h = 1; h <= e; h++)
        {
            if (e % h != 0) continue;
            var got = Reference(w, h, q, kv);
            if (got.allclose(expected, rtol: 1e-4, atol: 1e-5))
            {
                HeadCounts.AddOrUpdate(m, new StrongBox<int>(h));
                return h;
            }
        }
        throw new NotSupportedException($"MultiheadAttention '{ctx.ModulePath}': no head count reproduces the module's output (it may use add_zero_attn, which the exporter does not map). Register a mapping of your own for this module.");
    }

    /// <summary>PyTorch's multi-head attention without masks, in (L, N, E) layout, for <paramref name="heads"/> heads.</summary>
    private static Tensor Reference(Projections w, int heads, Tensor query, Tensor keyValue)
    {
        long e = w.OutWeight.shape[0], dh = e / heads;
        Tensor Split(Tensor x, Tensor weight, Tensor? bias)
        {
            var y = nn.functional.linear(x, weight, bias);            // (L, N, E)
            return y.reshape(y.shape[0], y.shape[1] * heads, dh).transpose(0, 1); // (N·H, L, Dh)
        }
        var q = Split(query, w.Q, w.QBias);
        var k = Split(keyValue, w.K, w.KBias);
        var v = Split(keyValue, w.V, w.VBias);
        var attn = q.matmul(k.transpose(1, 2)).mul(1.0 / Math.Sqrt(dh)).softmax(-1);
        var y = attn.matmul(v).transpose(0, 1).reshape(query.shape[0], query.shape[1], e);
        return nn.functional.linear(y, w.OutWeight, w.OutBias);
    }
}
