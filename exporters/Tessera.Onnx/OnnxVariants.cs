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

    /// <summary>int8 weights: <see cref="ToNBitWeights"/> with 8 bits.</summary>
    public static ModelProto ToInt8Weights(ModelProto model, int blockSize = 32, int minK = 64, int accuracyLevel = 4) =>
        ToNBitWeights(model, 8, blockSize, minK, accuracyLevel);

    /// <summary>
    /// n-bit weights (8 or 4): every MatMul whose second input is a float32 2-D initializer (K, N) with K of at least
    /// <paramref name="minK"/> becomes ONNX Runtime's <c>com.microsoft.MatMulNBits</c>, symmetric per block of
    /// <paramref name="blockSize"/> along K: scale = max|w| / (2^(bits-1) - 1), code = round(w / scale) + 2^(bits-1)
    /// (the op's default zero point). B is stored as (N, K / blockSize, blockSize · bits / 8) bytes, 4-bit codes two to a
    /// byte with the even element in the low nibble; scales as (N · K / blockSize).
    /// <paramref name="accuracyLevel"/> 4 lets ONNX Runtime quantize activations to int8 per block and use integer
    /// dot products (VNNI on x86); 0 dequantizes the weights and multiplies in float32. The model passed in is not changed.
    /// </summary>
    public static ModelProto ToNBitWeights(ModelProto model, int bits, int blockSize = 32, int minK = 64, int accuracyLevel = 4)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), bits, "MatMulNBits variants are written with 4 or 8 bits.");
        if (blockSize < 16 || (blockSize & (blockSize - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "The block size must be a power of two of at least 16.");
        int maxCode = (1 << (bits - 1)) - 1, zeroPoint = 1 << (bits - 1), blobBytes = blockSize * bits / 8;
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
            var codes = new byte[n * blocks * blobBytes];
            var scales = new float[n * blocks];
            for (int col = 0; col < n; col++)
                for (int b = 0; b < blocks; b++)
                {
                    float amax = 0;
                    for (int r = b * blockSize; r < Math.Min(k, (b + 1) * blockSize); r++) amax = Math.Max(amax, Math.Abs(values[r * n + col]));
                    float scale = amax > 0 ? amax / maxCode : 1f;
                    scales[col * blocks + b] = scale;
                    int blob = (col * blocks + b) * blobBytes;
                    for (int j = 0; j < blockSize; j++)
                    {
                        int r = b * blockSize + j;
                        int code = (r < k ? (int)Math.Clamp(MathF.Round(values[r * n + col] / scale), -maxCode, maxCode) : 0) + zeroPoint;
                        if (bits == 8) codes[blob + j] = (byte)code;
                        else codes[blob + j / 2] |= (byte)(j % 2 == 0 ? code : code << 4);
                    }
                }
            var bName = $"{w.Name}_int{bits}";
            var sName = $"{w.Name}_int{bits}_scales";
            if (!initializers.ContainsKey(bName))
            {
                var bt = new TensorProto { Name = bName, DataType = (int)TensorElementType.UInt8, RawData = ByteString.CopyFrom(codes) };
                bt.Dims.AddRange([n, blocks, blobBytes]);
                var st = new TensorProto { Name = sName, DataType = (int)TensorElementType.Float32, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(scales.AsSpan())) };
                st.Dims.Add(n * blocks);
                graph.Initializer.Add(bt);
                graph.Initializer.Add(st);
                initializers[bName] = bt;
                initializers[sName] = st;
            }
            var q8 = new NodeProto { Name = node.Name + $"_int{bits}", OpType = "MatMulNBits", Domain = "com.microsoft" };
            q8.Input.AddRange([node.Input[0], bName, sName]);
            q8.Output.AddRange(node.Output);
            q8.Attribute.AddRange([OnnxAttribute.Int("K", k), OnnxAttribute.Int("N", n), OnnxAttribute.Int("bits", bits), OnnxAttribute.Int("block_size", blockSize)]);
            if (accuracyLevel > 0) q8.Attribute.Add(OnnxAttribute.Int("accuracy_level", accuracyLevel));
            graph.Node[i] = q8;
            if (--users[w.Name] == 0) replaced.Add(w.Name);
            converted++;
        }
        foreach (var t in graph.Initializer.Where(t => replaced.Contains(t.Name)).ToList()) graph.Initializer.Remove(t);
        if (converted > 0 && copy.OpsetImport.All(o => o.Domain != "com.microsoft"))
            copy.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        copy.MetadataProps.Add(new StringStringEntryProto { Key = "tessera.variant", Value = $"int{bits}-weights MatMulNBits block {blockSize} ({converted} MatMuls)" });
        return copy;
    }
}
