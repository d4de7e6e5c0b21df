using System.Buffers.Binary;
using System.Text.Json;

namespace Tessera.Export.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape)
{
    public long Elements => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// Reads a safetensors file's header only (8-byte little-endian length, then JSON: name → dtype, shape, offsets), so
/// a checkpoint's tensors can be counted and sized without reading their data.
/// </summary>
public static class SafetensorsHeader
{
    public const long MaxHeaderBytes = 100L << 20;

    public static IReadOnlyList<SafetensorsEntry> Read(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        if (f.Read(lengthBytes) != 8) throw new CheckpointException($"{path} is too short to be a safetensors file.");
        long length = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (length <= 0 || length > MaxHeaderBytes || length > f.Length - 8)
            throw new CheckpointException($"{path}: the safetensors header length {length} is not plausible (file {f.Length} bytes); the file is corrupt or not safetensors.");
        var header = new byte[length];
        f.ReadExactly(header);
        try
        {
            using var doc = JsonDocument.Parse(header);
            return doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
                .Select(p => new SafetensorsEntry(p.Name, p.Value.GetProperty("dtype").GetString() ?? "", p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray()))
                .ToList();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new CheckpointException($"{path}: the safetensors header is not valid ({e.Message}).");
        }
    }
}
