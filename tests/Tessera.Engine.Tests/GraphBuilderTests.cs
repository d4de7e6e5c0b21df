using Tessera.Abstractions;
using Tessera.Onnx;
using Tessera.Onnx.Proto;

namespace Tessera.Engine.Tests;

[TestClass]
public sealed class GraphBuilderTests : CpuEngineTest
{
    private float[] Run(ModelSource model, string input, HostTensor x, string output)
    {
        using var c = Engine.Compile(model, "cpu:0", new CompileOptions { UseCompiledModelCache = false });
        using var o = c.Model.Run(new Dictionary<string, ITensorValue> { [input] = x });
        return o[output].ToHost().AsSpan<float>().ToArray();
    }

    [TestMethod]
    public void AttributesOpsetsAndScopedNamesAreWrittenAsOnnxExpects()
    {
        var g = new OnnxGraphBuilder("softmax_test", opset: 21);
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3));
        OnnxValue y;
        using (g.Scope("head"))
            y = g.Node("Softmax", [x], [OnnxAttribute.Int("axis", -1)]);
        g.Output(g.Node("Mul", y, g.Scalar(2f)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3));
        g.Metadata("tessera.stage", "test");
        var model = g.Build();

        Assert.AreEqual(OnnxGraphBuilder.IrVersion, model.IrVersion);
        Assert.AreEqual(21, model.OpsetImport.Single(o => o.Domain == "").Version);
        Assert.AreEqual("/head/Softmax", model.Graph.Node[0].Name);
        Assert.AreEqual("batch", model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        Assert.AreEqual(3, model.Graph.Input[0].Type.TensorType.Shape.Dim[1].DimValue);
        Assert.AreEqual("test", model.MetadataProps.Single().Value);

        var values = Run(ModelSource.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(model)), "x", HostTensor.Create(new float[] { 0, 0, MathF.Log(2) }, 1, 3), "y");
        CollectionAssert.AreEqual(new[] { 0.5f, 0.5f, 1f }, values.Select(v => MathF.Round(v, 5)).ToArray());
    }

    [TestMethod]
    public void ReusedValueNamesAreRejectedAndGeneratedNamesAreUnique()
    {
        var g = new OnnxGraphBuilder();
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2));
        Assert.ThrowsExactly<ArgumentException>(() => g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2)));
        var a = g.Node("Relu", x);
        var b = g.Node("Relu", x);
        Assert.AreNotEqual(a.Name, b.Name);
        Assert.ThrowsExactly<InvalidOperationException>(() => g.Node("GroupQueryAttention", [x], [], domain: "com.microsoft"));
    }

    [TestMethod]
    public void ExternalDataRoundTripsThroughOnnxRuntimeAndTheLoader()
    {
        var rng = new Random(3);
        var w = Enumerable.Range(0, 64 * 64).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var g = new OnnxGraphBuilder("ext");
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(1, 64));
        var small = g.Initializer("small", new float[] { 1, 2 }, 2);
        g.Output(g.Node("MatMul", x, g.Initializer("w", w, 64, 64)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(1, 64));
        var model = g.Build();

        var inline = Path.Combine(Temp, "inline.onnx");
        Assert.IsNull(OnnxModelFile.Save(model, inline));
        var external = Path.Combine(Temp, "external.onnx");
        var dataPath = OnnxModelFile.Save(model, external, new ExternalDataOptions(MinTensorBytes: 1024));

        Assert.AreEqual(external + ".data", dataPath);
        Assert.IsTrue(new FileInfo(external).Length < 1024, "weights left the protobuf");
        Assert.IsTrue(new FileInfo(dataPath!).Length >= w.Length * 4);
        Assert.IsFalse(model.Graph.Initializer.Any(t => t.DataLocation == TensorProto.Types.DataLocation.External), "Save does not change the model it was given");

        var xIn = HostTensor.Create(Enumerable.Range(0, 64).Select(i => i / 64f).ToArray(), 1, 64);
        CollectionAssert.AreEqual(Run(ModelSource.FromFile(inline), "x", xIn, "y"), Run(ModelSource.FromFile(external), "x", xIn, "y"));

        var loaded = OnnxModelFile.Load(external);
        CollectionAssert.AreEqual(w, OnnxTensors.ToArray<float>(loaded.Graph.Initializer.Single(t => t.Name == "w")));
        CollectionAssert.AreEqual(new float[] { 1, 2 }, OnnxTensors.ToArray<float>(loaded.Graph.Initializer.Single(t => t.Name == small.Name)));
    }

    [TestMethod]
    public void Fp16WeightVariantHalvesTheFileAndStaysCloseToFp32()
    {
        var rng = new Random(4);
        var w = Enumerable.Range(0, 128 * 128).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var g = new OnnxGraphBuilder("fp16");
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 128));
        g.Output(g.Node("MatMul", x, g.Initializer("w", w, 128, 128)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims(2, 128));
        var fp32 = g.Build();
        var fp16 = OnnxVariants.ToFloat16Weights(fp32);

        Assert.AreEqual((int)TensorElementType.Float32, fp32.Graph.Initializer.Single().DataType, "the source model is unchanged");
        Assert.AreEqual((int)TensorElementType.Float16, fp16.Graph.Initializer.Single().DataType);
        var bytes32 = Google.Protobuf.MessageExtensions.ToByteArray(fp32);
        var bytes16 = Google.Protobuf.MessageExtensions.ToByteArray(fp16);
        Assert.AreEqual(0.5, (double)bytes16.Length / bytes32.Length, 0.02);

        var xs = HostTensor.Create(Enumerable.Range(0, 256).Select(i => (i % 13) / 13f).ToArray(), 2, 128);
        var a = Run(ModelSource.FromBytes(bytes32), "x", xs, "y");
        var b = Run(ModelSource.FromBytes(bytes16), "x", xs, "y");
        double maxDiff = a.Zip(b, (p, q) => Math.Abs(p - q)).Max();
        Assert.IsTrue(maxDiff is > 0 and < 1e-2, $"fp16 weights move outputs by {maxDiff:E2}");
    }

    [TestMethod]
    public void Int8WeightVariantUsesMatMulNBitsAndStaysCloseToFp32()
    {
        var rng = new Random(5);
        var w = Enumerable.Range(0, 200 * 96).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray(); // K = 200: not a multiple of the block
        var g = new OnnxGraphBuilder("int8");
        var x = g.Input("x", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3, 200));
        g.Output(g.Node("MatMul", x, g.Initializer("w", w, 200, 96)), "y", TensorElementType.Float32, OnnxGraphBuilder.Dims("batch", 3, 96));
        var fp32 = g.Build();
        var int8 = OnnxVariants.ToInt8Weights(fp32);

        Assert.AreEqual("MatMulNBits", int8.Graph.Node.Single(n => n.Output[0] != "y" || n.OpType != "Identity").OpType);
        Assert.IsFalse(int8.Graph.Initializer.Any(t => t.Name == "w"), "the float weight is gone");
        var bytes32 = Google.Protobuf.MessageExtensions.ToByteArray(fp32);
        var bytes8 = Google.Protobuf.MessageExtensions.ToByteArray(int8);
        Assert.IsTrue(bytes8.Length < bytes32.Length * 0.35, $"{bytes8.Length} vs {bytes32.Length} bytes");

        var xs = HostTensor.Create(Enumerable.Range(0, 2 * 3 * 200).Select(i => (i % 17) / 17f - 0.5f).ToArray(), 2, 3, 200);
        var a = Run(ModelSource.FromBytes(bytes32), "x", xs, "y");
        var b = Run(ModelSource.FromBytes(bytes8), "x", xs, "y");
        double maxDiff = a.Zip(b, (p, q) => Math.Abs(p - q)).Max(), maxAbs = a.Max(Math.Abs);
        Assert.IsTrue(maxDiff > 0 && maxDiff < maxAbs * 0.02, $"int8 weights move outputs by {maxDiff:E2} (outputs up to {maxAbs:F2})");
    }

    [TestMethod]
    public void LoadingANonOnnxFileNamesIt()
    {
        var path = Path.Combine(Temp, "text.onnx");
        File.WriteAllText(path, "definitely { not a protobuf");
        var e = Assert.ThrowsExactly<ModelLoadException>(() => OnnxModelFile.Load(path));
        StringAssert.Contains(e.Message, path);
    }
}
