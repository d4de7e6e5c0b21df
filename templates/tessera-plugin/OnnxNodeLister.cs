using System.Text;

namespace Vendor.Plugin;

/// <summary>
/// Lists the nodes of an ONNX model's main graph by walking the protobuf wire format directly
/// (ModelProto.graph = 7, GraphProto.node = 1, NodeProto.name = 3 / op_type = 4 / domain = 7).
/// Plugins compile against the contracts only, so they carry this reader instead of the ONNX protobuf classes.
/// </summary>
internal static class OnnxNodeLister
{
    public readonly record struct Node(string Name, string OpType, string Domain)
    {
        public string QualifiedOpType => Domain is "" or "ai.onnx" ? OpType : $"{Domain}.{OpType}";
    }

    /// <summary>The nodes in graph order; throws <see cref="FormatException"/> when the bytes are not a protobuf.</summary>
    public static List<Node> List(ReadOnlySpan<byte> model)
    {
        var nodes = new List<Node>();
        var graph = FindField(model, 7);
        if (graph.IsEmpty) return nodes;
        int pos = 0;
        while (pos < graph.Length)
        {
            var (field, wire) = ReadTag(graph, ref pos);
            if (field == 1 && wire == 2)
            {
                var node = ReadBytes(graph, ref pos);
                string name = "", op = "", domain = "";
                int p = 0;
                while (p < node.Length)
                {
                    var (f, w) = ReadTag(node, ref p);
                    if (w == 2 && f is 3 or 4 or 7)
                    {
                        var s = Encoding.UTF8.GetString(ReadBytes(node, ref p));
                        if (f == 3) name = s; else if (f == 4) op = s; else domain = s;
                    }
                    else Skip(node, ref p, w);
                }
                nodes.Add(new Node(name, op, domain));
            }
            else Skip(graph, ref pos, wire);
        }
        return nodes;
    }

    private static ReadOnlySpan<byte> FindField(ReadOnlySpan<byte> message, int wanted)
    {
        int pos = 0;
        while (pos < message.Length)
        {
            var (field, wire) = ReadTag(message, ref pos);
            if (field == wanted && wire == 2) return ReadBytes(message, ref pos);
            Skip(message, ref pos, wire);
        }
        return default;
    }

    private static (int Field, int Wire) ReadTag(ReadOnlySpan<byte> b, scoped ref int pos)
    {
        ulong tag = ReadVarint(b, ref pos);
        return ((int)(tag >> 3), (int)(tag & 7));
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> b, scoped ref int pos)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= b.Length) throw new FormatException("truncated varint");
            byte x = b[pos++];
            result |= (ulong)(x & 0x7F) << shift;
            if ((x & 0x80) == 0) return result;
        }
        throw new FormatException("malformed varint");
    }

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> b, scoped ref int pos)
    {
        ulong len = ReadVarint(b, ref pos);
        if (len > (ulong)(b.Length - pos)) throw new FormatException("length-delimited field runs past the end");
        var s = b.Slice(pos, (int)len);
        pos += (int)len;
        return s;
    }

    private static void Skip(ReadOnlySpan<byte> b, ref int pos, int wire)
    {
        switch (wire)
        {
            case 0: ReadVarint(b, ref pos); break;
            case 1: pos += 8; break;
            case 2: ReadBytes(b, ref pos); break;
            case 5: pos += 4; break;
            default: throw new FormatException($"unsupported wire type {wire}");
        }
        if (pos > b.Length) throw new FormatException("field runs past the end");
    }
}
