using System.Runtime.InteropServices;
using Google.Protobuf;
using Tessera.Abstractions;
using Tessera.Onnx.Proto;

namespace Tessera.Onnx;

/// <summary>Derived variants of an exported model.</summary>
public static class OnnxVariants
{
    /// <summary>
    /// fp16 weight storage: every float32 initializer of at least <paramref name="minElements"/> elements is stored as
    /// float16 and cast back to float32 by a Cast node at the start of the graph. The file is about half the size and
    /// loads on every backend; arithmetic stays float32 (ONNX Runtime folds the casts when the session is created).
    /// The model passed in is not changed.
    /// </summary>
    public static ModelProto ToFloat16Weights(ModelProto model, int minElements = 1024)
    {
        var copy = model.Clone();
        var graph = copy.Graph;
        var casts = new List<NodeProto>();
        foreach (var t in graph.Initializer)
        {
            if (t.DataType != (int)TensorElementType.Float32 || t.RawData.Length / 4 < minElements) continue;
            var values = MemoryMarshal.Cast<byte, float>(t.RawData.Span);
            var halves = new Half[values.Length];
            for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
            var original = t.Name;
            t.Name = original + "_fp16";
            t.DataType = (int)TensorElementType.Float16;
            t.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(halves.AsSpan()));
            var cast = new NodeProto { Name = $"/fp16_weights/Cast_{casts.Count}", OpType = "Cast", Domain = "" };
            cast.Input.Add(t.Name);
            cast.Output.Add(original);
            cast.Attribute.Add(OnnxAttribute.Int("to", (long)TensorElementType.Float32));
            casts.Add(cast);
        }
        // Casts first, so the graph stays topologically sorted.
        var nodes = casts.Concat(graph.Node).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        copy.MetadataProps.Add(new StringStringEntryProto { Key = "tessera.variant", Value = "fp16-weights" });
        return copy;
    }

    /// <summary>
    /// int8 weights: every MatMul whose second input is a float32 2-D initializer (K, N) with K of at least
    /// <paramref name="minK"/> becomes ONNX Runtime's <c>com.microsoft.MatMulNBits</c> with 8-bit codes, symmetric per
    /// block of <paramref name="blockSize"/> along K: scale = max|w| / 127, code = round(w / scale) + 128 (the op's
    /// default zero point for 8 bits). B is stored as (N, K / blockSize, blockSize) bytes, scales as (N · K / blockSize).
    /// <paramref name="accuracyLevel"/> 4 lets ONNX Runtime quantize activations to int8 per block and use integer
    /// dot products (VNNI on x86); 0 dequantizes the weights and multiplies in float32. The model passed in is not changed.
    /// </summary>
    public static ModelProto ToInt8Weights(ModelProto model, int blockSize = 32, int minK = 64, int accuracyLevel = 4)
    {
        var copy = model.Clone();
        var graph = copy.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        var users = graph.Node.SelectMany(n => n.Input).GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count());
        var replaced = new HashSet<string>();
        int converted = 0;
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var node = graph.Node[i];
            if (node.OpType != "MatMul" || node.Domain is not ("" or "ai.onnx") || node.Input.Count != 2) continue;
            if (!initializers.TryGetValue(node.Input[1], out var w) || w.DataType != (int)TensorElementType.Float32 || w.Dims.Count != 2) continue;
            int k = (int)w.Dims[0], n = (int)w.Dims[1];
            if (k < minK) continue;
            int blocks = (k + blockSize - 1) / blockSize;
            var values = MemoryMarshal.Cast<byte, float>(w.RawData.Span);
            var codes = new byte[n * blocks * blockSize];
            var scales = new float[n * blocks];
            for (int col = 0; col < n; col++)
                for (int b = 0; b < blocks; b++)
                {
                    float amax = 0;
                    for (int r = b * blockSize; r < Math.Min(k, (b + 1) * blockSize); r++) amax = Math.Max(amax, Math.Abs(values[r * n + col]));
                    float scale = amax > 0 ? amax / 127f : 1f;
                    scales[col * blocks + b] = scale;
                    for (int j = 0; j < blockSize; j++)
                    {
                        int r = b * blockSize + j;
                        int q = r < k ? (int)Math.Clamp(MathF.Round(values[r * n + col] / scale), -127, 127) : 0;
                        codes[(col * blocks + b) * blockSize + j] = (byte)(q + 128);
                    }
                }
            var bName = $"{w.Name}_int8";
            var sName = $"{w.Name}_int8_scales";
            if (!initializers.ContainsKey(bName))
            {
                var bt = new TensorProto { Name = bName, DataType = (int)TensorElementType.UInt8, RawData = ByteString.CopyFrom(codes) };
                bt.Dims.AddRange([n, blocks, blockSize]);
                var st = new TensorProto { Name = sName, DataType = (int)TensorElementType.Float32, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(scales.AsSpan())) };
                st.Dims.Add(n * blocks);
                graph.Initializer.Add(bt);
                graph.Initializer.Add(st);
                initializers[bName] = bt;
                initializers[sName] = st;
            }
            var q8 = new NodeProto { Name = node.Name + "_int8", OpType = "MatMulNBits", Domain = "com.microsoft" };
            q8.Input.AddRange([node.Input[0], bName, sName]);
            q8.Output.AddRange(node.Output);
            q8.Attribute.AddRange([OnnxAttribute.Int("K", k), OnnxAttribute.Int("N", n), OnnxAttribute.Int("bits", 8), OnnxAttribute.Int("block_size", blockSize)]);
            if (accuracyLevel > 0) q8.Attribute.Add(OnnxAttribute.Int("accuracy_level", accuracyLevel));
            graph.Node[i] = q8;
            if (--users[w.Name] == 0) replaced.Add(w.Name);
            converted++;
        }
        foreach (var t in graph.Initializer.Where(t => replaced.Contains(t.Name)).ToList()) graph.Initializer.Remove(t);
        if (converted > 0 && copy.OpsetImport.All(o => o.Domain != "com.microsoft"))
            copy.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        copy.MetadataProps.Add(new StringStringEntryProto { Key = "tessera.variant", Value = $"int8-weights MatMulNBits block {blockSize} ({converted} MatMuls)" });
        return copy;
    }
}
