using Tessera.Abstractions;
using Tessera.Onnx;

namespace Tessera.Conformance;

/// <summary>
/// Single-operator (or few-operator) graphs covering what the shipped model family uses: matrix products, norms,
/// activations, attention, convolution patches, embedding lookups and layout ops. Weights are seeded, so every run and
/// every machine builds the same bytes.
/// </summary>
public static class OpGraphs
{
    private static float[] Weights(int n, ulong seed, float scale = 0.2f)
    {
        var rng = new Random((int)(seed % int.MaxValue));
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    private static OnnxGraphBuilder Graph(string name) => new(name, opset: 21);

    public static IReadOnlyList<ConformanceCase> All() =>
    [
        new("op.matmul", "MatMul (batch, 64, 128) x (128, 96)", () =>
        {
            var g = Graph("matmul");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 64, 128));
            g.Output(g.Node("MatMul", x, g.Initializer("w", Weights(128 * 96, 1), 128, 96)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 64, 96));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.matmul-bias-relu", "MatMul + Add + Relu (a linear layer as the exporter writes it)", () =>
        {
            var g = Graph("linear");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 48));
            var h = g.Node("Add", g.Node("MatMul", x, g.Initializer("w", Weights(48 * 32, 2), 48, 32)), g.Initializer("b", Weights(32, 3), 32));
            g.Output(g.Node("Relu", h), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 32));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.gemm-bias-relu", "Gemm (transB, alpha 0.5, beta 2) + Relu", () =>
        {
            var g = Graph("gemm");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 48));
            var gemm = g.Node("Gemm", [x, g.Initializer("w", Weights(32 * 48, 12), 32, 48), g.Initializer("b", Weights(32, 13), 32)],
                [OnnxAttribute.Int("transB", 1), OnnxAttribute.Float("alpha", 0.5f), OnnxAttribute.Float("beta", 2f)]);
            g.Output(g.Node("Relu", gemm), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 32));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.softmax", "Softmax over the last axis", () =>
        {
            var g = Graph("softmax");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 8, 50));
            g.Output(g.Node("Softmax", [g.Node("Mul", x, g.Scalar(4f))], [OnnxAttribute.Int("axis", -1)]), "probs", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 8, 50));
            return g.ToBytes();
        }, 1e-5, 1e-4),
        new("op.layernorm", "LayerNormalization with scale and bias", () =>
        {
            var g = Graph("layernorm");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 16, 64));
            var y = g.Node("LayerNormalization", [x, g.Initializer("scale", Weights(64, 4, 1f), 64), g.Initializer("bias", Weights(64, 5), 64)],
                [OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", 1e-6f)]);
            g.Output(y, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 16, 64));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.rmsnorm", "RMSNorm from Pow, ReduceMean, Add, Sqrt, Div, Mul", () =>
        {
            var g = Graph("rmsnorm");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 16, 64));
            var ms = g.Node("ReduceMean", [g.Node("Pow", x, g.Scalar(2f)), g.Int64s(-1)], [OnnxAttribute.Int("keepdims", 1)]);
            var y = g.Node("Mul", g.Node("Div", x, g.Node("Sqrt", g.Node("Add", ms, g.Scalar(1e-6f)))), g.Initializer("w", Weights(64, 6, 1f), 64));
            g.Output(y, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 16, 64));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.gelu-silu", "Gelu (tanh) and x * Sigmoid(x) (SwiGLU's gate)", () =>
        {
            var g = Graph("activations");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 256));
            var gelu = g.Node("Gelu", [x], [OnnxAttribute.String("approximate", "tanh")]);
            var silu = g.Node("Mul", x, g.Node("Sigmoid", x));
            g.Output(g.Node("Add", gelu, silu), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 256));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.attention", "Scaled dot-product attention: MatMul, Softmax, MatMul over (batch, 4 heads, 32, 16)", () =>
        {
            var g = Graph("attention");
            var q = g.Input("q", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 32, 16));
            var k = g.Input("k", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 32, 16));
            var v = g.Input("v", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 32, 16));
            var scores = g.Node("Mul", g.Node("MatMul", q, g.Node("Transpose", [k], [OnnxAttribute.Ints("perm", 0, 1, 3, 2)])), g.Scalar(0.25f));
            var p = g.Node("Softmax", [scores], [OnnxAttribute.Int("axis", -1)]);
            g.Output(g.Node("MatMul", p, v), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 32, 16));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.conv-patchify", "Conv 4x4 stride 4 (a DiT patch embedding), 4 -> 32 channels", () =>
        {
            var g = Graph("patchify");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 32, 32));
            var y = g.Node("Conv", [x, g.Initializer("w", Weights(32 * 4 * 16, 7), 32, 4, 4, 4), g.Initializer("b", Weights(32, 8), 32)],
                [OnnxAttribute.Ints("kernel_shape", 4, 4), OnnxAttribute.Ints("strides", 4, 4)]);
            g.Output(y, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 32, 8, 8));
            return g.ToBytes();
        }, 1e-4, 1e-4),
        new("op.embedding", "Gather of int64 ids from an embedding table", () =>
        {
            var g = Graph("embedding");
            var ids = g.Input("ids", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch", 12));
            g.Output(g.Node("Gather", [g.Initializer("table", Weights(8 * 24, 9), 8, 24), ids], [OnnxAttribute.Int("axis", 0)]), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 12, 24));
            return g.ToBytes();
        }, 0, 0),
        new("op.layout", "Reshape, Transpose, Concat, Slice (head split and merge)", () =>
        {
            var g = Graph("layout");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 8, 64));
            var heads = g.Node("Transpose", [g.Node("Reshape", x, g.Int64s(0, 8, 4, 16))], [OnnxAttribute.Ints("perm", 0, 2, 1, 3)]);
            var both = g.Node("Concat", [heads, heads], [OnnxAttribute.Int("axis", 2)]);
            var sliced = g.Node("Slice", both, g.Int64s(4), g.Int64s(12), g.Int64s(2));
            g.Output(sliced, "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 4, 8, 16));
            return g.ToBytes();
        }, 0, 0),
        new("op.argmax-topk", "ArgMax and TopK over logits (token sampling's inputs)", () =>
        {
            var g = Graph("argmax");
            var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 512));
            var arg = g.Node("ArgMax", [x], [OnnxAttribute.Int("axis", -1), OnnxAttribute.Int("keepdims", 0)]);
            var top = g.NodeMulti("TopK", [x, g.Int64s(8)], 2, [OnnxAttribute.Int("axis", -1)]);
            g.Output(arg, "argmax", TensorElementType.Int64, OnnxGraphBuilder.Dims("batch"));
            g.Output(top[0], "top_values", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 8));
            return g.ToBytes();
        }, 1e-6, 0),
    ];
}
