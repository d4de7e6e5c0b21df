using System.Runtime.InteropServices;
using System.Text;
using Tessera.Abstractions;

namespace Vendor.Plugin;

/// <summary>One node of the graph: what the host's partitioning and <c>CheckSupport</c> talk about, by name.</summary>
internal sealed record OnnxNode(string Name, string OpType, string Domain, string[] Inputs, string[] Outputs, Dictionary<string, OnnxAttribute> Attributes)
{
    /// <summary>The op as NodePlacement reports it: <c>MatMul</c>, or with its domain (<c>com.microsoft.MatMulNBits</c>).</summary>
    public string QualifiedOpType => Domain is "" or "ai.onnx" ? OpType : $"{Domain}.{OpType}";
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) && a.Int is long v ? v : fallback;
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) && a.Float is float v ? v : fallback;
}

internal sealed record OnnxAttribute(string Name, long? Int, float? Float, long[] Ints);

/// <summary>A graph input or output: element type and shape (null when the graph does not say).</summary>
internal sealed record OnnxValue(string Name, TensorElementType ElementType, Dimension[]? Shape)
{
    public TensorSpec ToSpec() => new(Name, ElementType, Shape ?? []);
}

/// <summary>A weight; only float32 ones are decoded (the kernels here compute in float32).</summary>
internal sealed record OnnxInitializer(string Name, TensorElementType ElementType, long[] Dims, float[]? Floats);

/// <summary>
/// An ONNX model read straight from the protobuf wire format (field numbers from onnx.proto), so the plugin needs
/// neither ONNX Runtime nor the ONNX protobuf classes. Reads what a graph compiler needs: nodes in graph order, inputs,
/// outputs, declared value types, and the initializers, including ONNX external data (<c>location</c>, <c>offset</c>,
/// <c>length</c>, relative to the model file's folder). Throws <see cref="FormatException"/> for bytes that are not a
/// model and <see cref="FileNotFoundException"/> for a missing external-data file.
/// </summary>
internal sealed class OnnxModel
{
    public List<OnnxNode> Nodes { get; } = [];
    public List<OnnxValue> Inputs { get; } = [];
    public List<OnnxValue> Outputs { get; } = [];
    /// <summary>Every value whose type the graph declares (inputs, outputs, value_info, initializers).</summary>
    public Dictionary<string, TensorElementType> DeclaredTypes { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, OnnxInitializer> Initializers { get; } = new(StringComparer.Ordinal);

    public static OnnxModel Read(ModelSource source)
    {
        var bytes = source.GetBytes();
        var model = new OnnxModel();
        var graph = Wire.Find(bytes, 7); // ModelProto.graph
        if (graph is null) throw new FormatException("no graph (ModelProto field 7) found; the bytes are not an ONNX model");
        model.ReadGraph(graph, source.FilePath is { } f ? Path.GetDirectoryName(f) : null);
        return model;
    }

    private void ReadGraph(ReadOnlySpan<byte> graph, string? directory)
    {
        var inputs = new List<OnnxValue>();
        for (var r = new Wire(graph); r.Next(out var field, out var wire);)
        {
            switch (field)
            {
                case 1: Nodes.Add(ReadNode(r.Bytes())); break;
                case 5: var init = ReadInitializer(r.Bytes(), directory); Initializers[init.Name] = init; DeclaredTypes[init.Name] = init.ElementType; break;
                case 11: inputs.Add(ReadValue(r.Bytes())); break;
                case 12: Outputs.Add(ReadValue(r.Bytes())); break;
                case 13: var v = ReadValue(r.Bytes()); DeclaredTypes[v.Name] = v.ElementType; break;
                default: r.Skip(wire); break;
            }
        }
        // Older exporters list initializers among the inputs too: those are weights, not inputs.
        Inputs.AddRange(inputs.Where(i => !Initializers.ContainsKey(i.Name)));
        foreach (var v in Inputs.Concat(Outputs)) DeclaredTypes[v.Name] = v.ElementType;
    }

    private static OnnxNode ReadNode(ReadOnlySpan<byte> node)
    {
        var inputs = new List<string>(); var outputs = new List<string>();
        string name = "", op = "", domain = "";
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        for (var r = new Wire(node); r.Next(out var field, out var wire);)
        {
            switch (field)
            {
                case 1: inputs.Add(r.String()); break;
                case 2: outputs.Add(r.String()); break;
                case 3: name = r.String(); break;
                case 4: op = r.String(); break;
                case 5: var a = ReadAttribute(r.Bytes()); attributes[a.Name] = a; break;
                case 7: domain = r.String(); break;
                default: r.Skip(wire); break;
            }
        }
        return new OnnxNode(name, op, domain, inputs.ToArray(), outputs.ToArray(), attributes);
    }

    private static OnnxAttribute ReadAttribute(ReadOnlySpan<byte> attribute)
    {
        string name = ""; long? i = null; float? f = null; var ints = new List<long>();
        for (var r = new Wire(attribute); r.Next(out var field, out var wire);)
        {
            switch (field)
            {
                case 1: name = r.String(); break;
                case 2 when wire == 5: f = r.Fixed32Float(); break;
                case 3 when wire == 0: i = (long)r.Varint(); break;
                case 8: r.Int64s(wire, ints); break;
                default: r.Skip(wire); break;
            }
        }
        return new OnnxAttribute(name, i, f, ints.ToArray());
    }

    private static OnnxValue ReadValue(ReadOnlySpan<byte> valueInfo)
    {
        string name = ""; var type = TensorElementType.Float32; Dimension[]? shape = null;
        for (var r = new Wire(valueInfo); r.Next(out var field, out var wire);)
        {
            if (field == 1) { name = r.String(); continue; }
            if (field != 2) { r.Skip(wire); continue; }
            var tensorType = Wire.Find(r.Bytes(), 1); // TypeProto.tensor_type
            if (tensorType is null) continue;
            for (var t = new Wire(tensorType); t.Next(out var tf, out var tw);)
            {
                if (tf == 1 && tw == 0) type = (TensorElementType)(int)t.Varint();
                else if (tf == 2) shape = ReadShape(t.Bytes());
                else t.Skip(tw);
            }
        }
        return new OnnxValue(name, type, shape);
    }

    private static Dimension[] ReadShape(ReadOnlySpan<byte> shape)
    {
        var dims = new List<Dimension>();
        for (var r = new Wire(shape); r.Next(out var field, out var wire);)
        {
            if (field != 1) { r.Skip(wire); continue; }
            var dim = Dimension.Symbolic("?");
            for (var d = new Wire(r.Bytes()); d.Next(out var df, out var dw);)
            {
                if (df == 1 && dw == 0) dim = Dimension.Fixed((long)d.Varint());
                else if (df == 2) dim = Dimension.Symbolic(d.String());
                else d.Skip(dw);
            }
            dims.Add(dim);
        }
        return dims.ToArray();
    }

    private static OnnxInitializer ReadInitializer(ReadOnlySpan<byte> tensor, string? directory)
    {
        var dims = new List<long>(); var type = TensorElementType.Float32; string name = "";
        byte[]? raw = null; var floats = new List<float>(); bool external = false;
        var externalInfo = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var r = new Wire(tensor); r.Next(out var field, out var wire);)
        {
            switch (field)
            {
                case 1: r.Int64s(wire, dims); break;
                case 2: type = (TensorElementType)(int)r.Varint(); break;
                case 4: r.Floats(wire, floats); break;
                case 8: name = r.String(); break;
                case 9: raw = r.Bytes().ToArray(); break;
                case 13:
                    string key = "", value = "";
                    for (var e = new Wire(r.Bytes()); e.Next(out var ef, out var ew);)
                        if (ef == 1) key = e.String(); else if (ef == 2) value = e.String(); else e.Skip(ew);
                    externalInfo[key] = value;
                    break;
                case 14: external = r.Varint() == 1; break;
                default: r.Skip(wire); break;
            }
        }
        if (type != TensorElementType.Float32) return new OnnxInitializer(name, type, dims.ToArray(), null);
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (external) raw = ReadExternal(name, externalInfo, directory, count * sizeof(float));
        float[] data = raw is not null ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : floats.ToArray();
        if (data.Length != count) throw new FormatException($"initializer '{name}' has {data.Length} values for shape [{string.Join(", ", dims)}]");
        return new OnnxInitializer(name, type, dims.ToArray(), data);
    }

    private static byte[] ReadExternal(string name, Dictionary<string, string> info, string? directory, long expectedBytes)
    {
        if (directory is null) throw new FormatException($"initializer '{name}' is in an external-data file, but the model was given as bytes, not as a file");
        var location = info.GetValueOrDefault("location") ?? throw new FormatException($"initializer '{name}' is external but names no location");
        var path = Path.GetFullPath(Path.Combine(directory, location));
        if (!path.StartsWith(Path.GetFullPath(directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new FormatException($"initializer '{name}': external-data location '{location}' is outside the model's folder");
        long offset = info.TryGetValue("offset", out var o) ? long.Parse(o) : 0;
        long length = info.TryGetValue("length", out var l) ? long.Parse(l) : expectedBytes;
        if (length != expectedBytes) throw new FormatException($"initializer '{name}': external data length {length} is not the {expectedBytes} bytes its shape needs");
        using var file = File.OpenRead(path);
        var bytes = new byte[length];
        file.Seek(offset, SeekOrigin.Begin);
        file.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>A protobuf wire-format reader over one message.</summary>
    private ref struct Wire(ReadOnlySpan<byte> message)
    {
        private readonly ReadOnlySpan<byte> _b = message;
        private int _pos;

        /// <summary>The first length-delimited field with this number, or null.</summary>
        public static byte[]? Find(ReadOnlySpan<byte> message, int wanted)
        {
            for (var r = new Wire(message); r.Next(out var field, out var wire);)
            {
                if (field == wanted && wire == 2) return r.Bytes().ToArray();
                r.Skip(wire);
            }
            return null;
        }

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_pos >= _b.Length) return false;
            ulong tag = Varint();
            (field, wire) = ((int)(tag >> 3), (int)(tag & 7));
            if (field == 0) throw new FormatException("field number 0");
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _b.Length) throw new FormatException("truncated varint");
                byte x = _b[_pos++];
                result |= (ulong)(x & 0x7F) << shift;
                if ((x & 0x80) == 0) return result;
            }
            throw new FormatException("malformed varint");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong len = Varint();
            if (len > (ulong)(_b.Length - _pos)) throw new FormatException("length-delimited field runs past the end");
            var s = _b.Slice(_pos, (int)len);
            _pos += (int)len;
            return s;
        }

        public string String() => Encoding.UTF8.GetString(Bytes());

        public float Fixed32Float()
        {
            if (_pos + 4 > _b.Length) throw new FormatException("truncated fixed32");
            var v = BitConverter.ToSingle(_b.Slice(_pos, 4));
            _pos += 4;
            return v;
        }

        /// <summary>A repeated int64, packed (wire type 2) or one element (wire type 0).</summary>
        public void Int64s(int wire, List<long> into)
        {
            if (wire == 0) { into.Add((long)Varint()); return; }
            for (var p = new Wire(Bytes()); p._pos < p._b.Length;) into.Add((long)p.Varint());
        }

        /// <summary>A repeated float, packed (wire type 2) or one element (wire type 5).</summary>
        public void Floats(int wire, List<float> into)
        {
            if (wire == 5) { into.Add(Fixed32Float()); return; }
            for (var p = new Wire(Bytes()); p._pos < p._b.Length;) into.Add(p.Fixed32Float());
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: _pos += 8; break;
                case 2: Bytes(); break;
                case 5: _pos += 4; break;
                default: throw new FormatException($"unsupported wire type {wire}");
            }
            if (_pos > _b.Length) throw new FormatException("field runs past the end");
        }
    }
}
