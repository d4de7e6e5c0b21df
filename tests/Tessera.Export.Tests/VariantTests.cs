using Tessera.Abstractions;
using Tessera.Onnx;
using static TorchSharp.torch;

namespace Tessera.Export.Tests;

/// <summary>The n-bit MatMulNBits variants compute x·dequant(W), with the block layout and nibble packing ONNX Runtime reads.</summary>
[TestClass]
public sealed class VariantTests
{
    private static (byte[] Model, float[] W) MatMulGraph(int k, int n, int seed)
    {
        var g = new OnnxGraphBuilder("mm", 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("b", k));
        var rng = new Random(seed);
        var w = Enumerable.Range(0, k * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var wv = g.Initializer<float>("w", w, k, n);
        g.Output(g.Node("MatMul", x, wv), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("b", n));
        return (g.ToBytes(), w);
    }

    /// <summary>Symmetric per-block quantization as documented on <see cref="OnnxVariants.ToNBitWeights"/>, dequantized.</summary>
    private static float[] Dequantized(float[] w, int k, int n, int bits, int block)
    {
        int maxCode = (1 << (bits - 1)) - 1;
        var result = new float[w.Length];
        for (int col = 0; col < n; col++)
            for (int b0 = 0; b0 < k; b0 += block)
            {
                float amax = 0;
                for (int r = b0; r < Math.Min(k, b0 + block); r++) amax = Math.Max(amax, Math.Abs(w[r * n + col]));
                float scale = amax > 0 ? amax / maxCode : 1f;
                for (int r = b0; r < Math.Min(k, b0 + block); r++)
                    result[r * n + col] = Math.Clamp(MathF.Round(w[r * n + col] / scale), -maxCode, maxCode) * scale;
            }
        return result;
    }

    [TestMethod]
    [DataRow(4, 32)]
    [DataRow(4, 64)]
    [DataRow(8, 32)]
    public void NBitWeightsDequantizeToTheDocumentedBlockCodes(int bits, int block)
    {
        const int k = 128, n = 48;
        var (bytes, w) = MatMulGraph(k, n, seed: bits * 100 + block);
        var model = Tessera.Onnx.Proto.ModelProto.Parser.ParseFrom(bytes);
        var quantized = OnnxVariants.ToNBitWeights(model, bits, block, accuracyLevel: 0); // dequantize + float32 matmul: exact
        Assert.IsTrue(quantized.Graph.Node.Any(nd => nd.OpType == "MatMulNBits"), "the MatMul was converted");
        var x = randn(3, k);
        using var parity = new Parity(Google.Protobuf.MessageExtensions.ToByteArray(quantized));
        var got = parity.Run(new Dictionary<string, Tensor> { ["x"] = x })["y"];
        var expected = x.matmul(tensor(Dequantized(w, k, n, bits, block)).view(k, n));
        var error = (got - expected).abs().max().item<float>();
        Assert.IsTrue(error < 1e-4, $"int{bits} block {block}: |ORT - x·dequant(W)| = {error:E2}");
        var fullPrecision = x.matmul(tensor(w).view(k, n));
        var quantError = (got - fullPrecision).abs().max().item<float>();
        Assert.IsTrue(quantError > 1e-4, "quantization changed the result (the variant is not a copy)");
        Assert.IsTrue(quantError < (bits == 4 ? 3.0 : 0.2), $"int{bits} error vs fp32 {quantError:E2} is within the variant's scale");
    }
}
