using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>A checkpoint could not be used: truncated, corrupt or of another kind.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// One file holding named tensors and JSON metadata:
/// <c>"TSRCKPT1"</c>, int64 header length, UTF-8 JSON header (metadata, tensor names, dtypes, shapes),
/// raw little-endian tensor data in header order, then a SHA-256 of everything before it.
/// Written to a temporary file and renamed into place, so a reader never sees half a checkpoint; a truncated or
/// altered file fails the length or hash check with a message naming it.
/// </summary>
public static class Checkpoint
{
    private static readonly byte[] Magic = "TSRCKPT1"u8.ToArray();

    public static void Save(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, JsonObject metadata)
    {
        var entries = new JsonArray();
        var blobs = new List<byte[]>();
        foreach (var (name, tensor) in tensors)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            byte[] bytes = cpu.dtype switch
            {
                ScalarType.Float32 => MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()).ToArray(),
                ScalarType.Int64 => MemoryMarshal.AsBytes(cpu.data<long>().ToArray().AsSpan()).ToArray(),
                _ => throw new NotSupportedException($"Checkpoint tensor '{name}' has dtype {cpu.dtype}; only float32 and int64 are stored."),
            };
            entries.Add(new JsonObject
            {
                ["name"] = name,
                ["dtype"] = cpu.dtype == ScalarType.Float32 ? "float32" : "int64",
                ["shape"] = new JsonArray(cpu.shape.Select(d => (JsonNode)d).ToArray()),
                ["bytes"] = bytes.Length,
            });
            blobs.Add(bytes);
        }
        var header = Encoding.UTF8.GetBytes(new JsonObject { ["metadata"] = metadata.DeepClone(), ["tensors"] = entries }.ToJsonString());

        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.{Environment.ProcessId}.tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            void Write(ReadOnlySpan<byte> data) { file.Write(data); sha.AppendData(data); }
            Write(Magic);
            Write(BitConverter.GetBytes((long)header.Length));
            Write(header);
            foreach (var b in blobs) Write(b);
            file.Write(sha.GetHashAndReset());
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>Reads and verifies a checkpoint. Throws <see cref="CheckpointException"/> naming the file when it is unusable.</summary>
    public static (JsonObject Metadata, Dictionary<string, Tensor> Tensors) Load(string path)
    {
        byte[] all;
        try { all = File.ReadAllBytes(path); }
        catch (IOException e) { throw new CheckpointException($"Checkpoint {path} cannot be read: {e.Message}", e); }
        if (all.Length < Magic.Length + 8 + 32 || !all.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new CheckpointException($"Checkpoint {path} is not a Tessera checkpoint or is truncated ({all.Length} bytes).");
        var body = all.AsSpan(0, all.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(all.AsSpan(all.Length - 32)))
            throw new CheckpointException($"Checkpoint {path} is truncated or corrupt (its SHA-256 does not match); it was probably cut short while being written.");
        long headerLength = BitConverter.ToInt64(all, Magic.Length);
        int offset = Magic.Length + 8;
        var header = JsonNode.Parse(Encoding.UTF8.GetString(all, offset, (int)headerLength))!.AsObject();
        offset += (int)headerLength;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var e in header["tensors"]!.AsArray())
        {
            var name = e!["name"]!.GetValue<string>();
            var shape = e["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            int n = e["bytes"]!.GetValue<int>();
            var span = all.AsSpan(offset, n);
            tensors[name] = e["dtype"]!.GetValue<string>() == "float32"
                ? tensor(MemoryMarshal.Cast<byte, float>(span).ToArray(), shape)
                : tensor(MemoryMarshal.Cast<byte, long>(span).ToArray(), shape);
            offset += n;
        }
        return (header["metadata"]!.AsObject(), tensors);
    }
}

/// <summary>
/// The checkpoints of one training run in a folder (<c>ckpt-00001000.tsr</c>), newest first; keeps the last few.
/// </summary>
public sealed class CheckpointStore(string directory, int keep = 3)
{
    public string Directory { get; } = directory;

    public string PathFor(long step) => Path.Combine(Directory, $"ckpt-{step:D8}.tsr");

    public IReadOnlyList<string> List() => System.IO.Directory.Exists(Directory)
        ? System.IO.Directory.GetFiles(Directory, "ckpt-*.tsr").Order(StringComparer.Ordinal).Reverse().ToList()
        : [];

    public void Save(long step, IReadOnlyList<(string, Tensor)> tensors, JsonObject metadata)
    {
        Checkpoint.Save(PathFor(step), tensors, metadata);
        foreach (var old in List().Skip(Math.Max(1, keep))) File.Delete(old);
    }

    /// <summary>
    /// The newest checkpoint that verifies; unusable newer ones are reported through <paramref name="warn"/> and skipped.
    /// Null when there is none.
    /// </summary>
    public (string Path, JsonObject Metadata, Dictionary<string, Tensor> Tensors)? LoadLatest(Action<string> warn)
    {
        foreach (var path in List())
        {
            try
            {
                var (meta, tensors) = Checkpoint.Load(path);
                return (path, meta, tensors);
            }
            catch (CheckpointException e)
            {
                warn($"{e.Message} Falling back to the previous checkpoint.");
            }
        }
        return null;
    }
}
