using System.Text;
using System.Text.RegularExpressions;
using Tessera.Abstractions;

namespace Tessera.Cli;

/// <summary>`tessera run`'s tensor files: NumPy .npy (version 1/2, little-endian, C order), raw .bin, random.</summary>
public static partial class TensorFiles
{
    public static HostTensor Random(TensorElementType type, long[] shape, Random rng)
    {
        var t = HostTensor.Zeros(type, shape);
        switch (type)
        {
            case TensorElementType.Float32: foreach (ref var x in t.AsSpan<float>()) x = (float)(rng.NextDouble() * 2 - 1); break;
            case TensorElementType.Float16: foreach (ref var x in t.AsSpan<Half>()) x = (Half)(rng.NextDouble() * 2 - 1); break;
            case TensorElementType.Int64: foreach (ref var x in t.AsSpan<long>()) x = rng.Next(0, 16); break;
            case TensorElementType.Int32: foreach (ref var x in t.AsSpan<int>()) x = rng.Next(0, 16); break;
            case TensorElementType.Bool: foreach (ref var x in t.AsSpan<bool>()) x = rng.Next(2) == 1; break;
            default: rng.NextBytes(t.AsBytes()); break;
        }
        return t;
    }

    /// <summary>Largest input tensor file read: 2 GiB (a managed array's limit).</summary>
    public const long MaxInputBytes = int.MaxValue;

    public static HostTensor Read(string path, TensorSpec spec, long[] defaultShape)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Input file {path} for '{spec.Name}' does not exist.");
        var bytes = InputFiles.ReadAllBytes(path, $"Input file for '{spec.Name}'", MaxInputBytes);
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return ReadNpy(path, bytes, spec);
        if (spec.Shape.Any(d => !d.IsFixed))
            throw new ArgumentException($"Input '{spec.Name}' has dynamic dimensions, so a raw file cannot say its shape; use a .npy file.");
        var t = HostTensor.Zeros(spec.ElementType, defaultShape);
        if (bytes.Length != t.AsBytes().Length)
            throw new InvalidDataException($"Input file {path} has {bytes.Length} bytes; '{spec.Name}' {spec.ElementType.OnnxName()}[{string.Join(", ", defaultShape)}] needs {t.AsBytes().Length}.");
        bytes.CopyTo(t.AsBytes());
        return t;
    }

    private static HostTensor ReadNpy(string path, byte[] bytes, TensorSpec spec)
    {
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path} is not a NumPy .npy file (bad magic).");
        if (bytes[6] is not (1 or 2 or 3) || bytes.Length < 12) throw new InvalidDataException($"{path} is a .npy version {bytes[6]} file; Tessera reads versions 1 to 3.");
        int headerLen = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : BitConverter.ToInt32(bytes, 8);
        int start = bytes[6] == 1 ? 10 : 12;
        if (headerLen < 0 || start + (long)headerLen > bytes.Length) throw new InvalidDataException($"{path} is truncated: its header says {headerLen} bytes but the file has {bytes.Length}.");
        var header = Encoding.ASCII.GetString(bytes, start, headerLen);
        var descr = DescrRegex().Match(header).Groups[1].Value;
        if (header.Contains("'fortran_order': True")) throw new InvalidDataException($"{path} is in Fortran order; save it in C order.");
        var shape = ShapeRegex().Match(header).Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d, out var v) && v >= 0 ? v : throw new InvalidDataException($"{path} has the shape entry '{d}', which is not a size.")).ToArray();
        var type = descr switch
        {
            "<f4" => TensorElementType.Float32, "<f2" => TensorElementType.Float16, "<i8" => TensorElementType.Int64,
            "<i4" => TensorElementType.Int32, "|u1" => TensorElementType.UInt8, "|i1" => TensorElementType.Int8, "|b1" => TensorElementType.Bool,
            _ => throw new InvalidDataException($"{path} holds dtype '{descr}', which Tessera does not read."),
        };
        if (type != spec.ElementType)
            throw new InvalidDataException($"{path} holds {type.OnnxName()} but input '{spec.Name}' is {spec.ElementType.OnnxName()}.");
        var t = HostTensor.Zeros(type, shape);
        var data = bytes.AsSpan(start + headerLen);
        if (data.Length != t.AsBytes().Length) throw new InvalidDataException($"{path} is truncated: {data.Length} data bytes for shape ({string.Join(", ", shape)}).");
        data.CopyTo(t.AsBytes());
        return t;
    }

    public static void WriteNpy(string path, HostTensor t)
    {
        var descr = t.ElementType switch
        {
            TensorElementType.Float32 => "<f4", TensorElementType.Float16 => "<f2", TensorElementType.Int64 => "<i8",
            TensorElementType.Int32 => "<i4", TensorElementType.UInt8 => "|u1", TensorElementType.Int8 => "|i1", TensorElementType.Bool => "|b1",
            _ => throw new NotSupportedException($"Cannot write {t.ElementType.OnnxName()} to .npy."),
        };
        var shape = t.Shape.Length == 1 ? $"({t.Shape[0]},)" : $"({string.Join(", ", t.Shape)})";
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, .. "NUMPY"u8, 1, 0]);
        f.Write(BitConverter.GetBytes((ushort)header.Length));
        f.Write(Encoding.ASCII.GetBytes(header));
        f.Write(t.AsBytes());
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")]
    private static partial Regex DescrRegex();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapeRegex();
}
