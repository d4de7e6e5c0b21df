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
}
