using Tessera.Abstractions;
using Tessera.Onnx;

namespace Tessera.Engine.Tests;

/// <summary>Small graphs made with the graph builder, with the values they compute written out in C#.</summary>
internal static class TestGraphs
{
    public static readonly float[] W = [0.5f, -1f, 2f, 0.25f, 1.5f, -0.75f]; // (3, 2)
    public static readonly float[] B = [0.1f, -0.2f];

    /// <summary>y = relu(x @ W + b), x: (batch, 3), y: (batch, 2).</summary>
    public static byte[] LinearRelu()
    {
        var g = new OnnxGraphBuilder("linear_relu");
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3));
        var h = g.Node("Add", g.Node("MatMul", x, g.Initializer("w", W, 3, 2)), g.Initializer("b", B, 2));
        g.Output(g.Node("Relu", h), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 2));
        return g.ToBytes();
    }

    /// <summary>The expected output of <see cref="LinearRelu"/>, computed here.</summary>
    public static float[] LinearReluExpected(float[] x)
    {
        int batch = x.Length / 3;
        var y = new float[batch * 2];
        for (int n = 0; n < batch; n++)
            for (int j = 0; j < 2; j++)
            {
                float s = B[j];
                for (int k = 0; k < 3; k++) s += x[n * 3 + k] * W[k * 2 + j];
                y[n * 2 + j] = MathF.Max(0, s);
            }
        return y;
    }

    /// <summary>
    /// Element-wise comparison with an absolute tolerance of 1e-5: ONNX Runtime's kernels sum in another order
    /// (and with FMA), so results differ from the C# loop in the last bit, while any real mistake is far larger.
    /// </summary>
    public static void AssertClose(float[] expected, float[] actual, float tolerance = 1e-5f)
    {
        Assert.AreEqual(expected.Length, actual.Length, "element count");
        for (int i = 0; i < expected.Length; i++)
            Assert.AreEqual(expected[i], actual[i], tolerance, $"element {i}");
    }

    /// <summary>state_out = state + step (a stand-in for a KV cache carried between runs).</summary>
    public static byte[] Accumulator()
    {
        var g = new OnnxGraphBuilder("accumulator");
        var state = g.Input("state", TensorElementType.Float32, OnnxGraphBuilder.Dims(4));
        var step = g.Input("step", TensorElementType.Float32, OnnxGraphBuilder.Dims(4));
        g.Output(g.Node("Add", state, step), "state_out", TensorElementType.Float32, OnnxGraphBuilder.Dims(4));
        return g.ToBytes();
    }
}
