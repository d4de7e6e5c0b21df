using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Tessera.Models.Training;

/// <summary>A checkpoint could not be used: truncated, corrupt or of another kind.</summary>
public sealed class TrainingCheckpointException(string message, Exception? inner = null) : Tessera.Abstractions.TesseraException(message, inner);

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

    /// <summary>True when the file is a complete checkpoint whose SHA-256 matches (no tensors are made).</summary>
    public static bool Verify(string path)
    {
        try { ReadVerified(path); return true; }
        catch (TrainingCheckpointException) { return false; }
    }

    /// <summary>Reads and verifies a checkpoint. Throws <see cref="TrainingCheckpointException"/> naming the file when it is unusable.</summary>
    public static (JsonObject Metadata, Dictionary<string, Tensor> Tensors) Load(string path)
    {
        var all = ReadVerified(path);
        try { return Parse(all, all.Length - 32); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or ArgumentException or FormatException or OverflowException or IndexOutOfRangeException)
        {
            // The hash matched, so the writer wrote this: a checkpoint of another format or a hand-made file.
            throw new TrainingCheckpointException($"Checkpoint {path} has a valid hash but an unreadable header ({e.GetType().Name}: {e.Message}); it was not written by this version of tessera.", e);
        }
    }

    private static byte[] ReadVerified(string path)
    {
        byte[] all;
        try { all = Tessera.Abstractions.InputFiles.ReadAllBytes(path, "Checkpoint", Array.MaxLength); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException) { throw new TrainingCheckpointException($"Checkpoint {path} cannot be read: {e.Message}", e); }
        if (all.Length < Magic.Length + 8 + 32 || !all.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new TrainingCheckpointException($"Checkpoint {path} is not a Tessera checkpoint or is truncated ({all.Length} bytes).");
        var body = all.AsSpan(0, all.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(all.AsSpan(all.Length - 32)))
            throw new TrainingCheckpointException($"Checkpoint {path} is truncated or corrupt (its SHA-256 does not match); it was probably cut short while being written.");
        return all;
    }

    private static (JsonObject Metadata, Dictionary<string, Tensor> Tensors) Parse(byte[] all, int bodyLength)
    {
        long headerLength = BitConverter.ToInt64(all, Magic.Length);
        int offset = Magic.Length + 8;
        if (headerLength < 0 || offset + headerLength > bodyLength) throw new ArgumentException($"header length {headerLength} is outside the file");
        var header = JsonNode.Parse(Encoding.UTF8.GetString(all, offset, (int)headerLength))!.AsObject();
        offset += (int)headerLength;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var e in header["tensors"]!.AsArray())
        {
            var name = e!["name"]!.GetValue<string>();
            var shape = e["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            int n = e["bytes"]!.GetValue<int>();
            if (n < 0 || offset + (long)n > bodyLength) throw new ArgumentException($"tensor '{name}' ({n} bytes) runs past the end of the file");
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
/// Rotation only ever deletes valid checkpoints older than the one just written, so a newer file (say a corrupt
/// one a resume skipped) can never cost the run its good checkpoints.
/// </summary>
public sealed class CheckpointStore(string directory, int keep = 3)
{
    public string Directory { get; } = directory;

    public string PathFor(long step) => Path.Combine(Directory, $"ckpt-{step:D8}.tsr");

    /// <summary>The step in a checkpoint's file name, or null for a file not named ckpt-&lt;step&gt;.tsr.</summary>
    public static long? StepOf(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        return name.StartsWith("ckpt-", StringComparison.Ordinal) && long.TryParse(name["ckpt-".Length..], System.Globalization.NumberStyles.None, null, out var s) ? s : null;
    }

    /// <summary>Checkpoint files, newest step first.</summary>
    public IReadOnlyList<string> List() => System.IO.Directory.Exists(Directory)
        ? System.IO.Directory.GetFiles(Directory, "ckpt-*.tsr").Where(p => StepOf(p) is not null).OrderByDescending(p => StepOf(p)).ToList()
        : [];

    public void Save(long step, IReadOnlyList<(string, Tensor)> tensors, JsonObject metadata)
    {
        Checkpoint.Save(PathFor(step), tensors, metadata);
        // Keep the newest `keep` valid checkpoints up to this step; never touch newer files, never delete an old
        // checkpoint while fewer than `keep` valid ones remain.
        int kept = 1;
        foreach (var old in List().Where(p => StepOf(p) < step))
        {
            if (kept < Math.Max(1, keep)) { if (IsValid(old)) kept++; continue; }
            File.Delete(old);
        }
    }

    private static bool IsValid(string path) => Checkpoint.Verify(path);

    /// <summary>
    /// The newest checkpoint that verifies; unusable newer ones are reported through <paramref name="warn"/> and
    /// skipped (with <paramref name="moveAsideUnusable"/>, renamed to <c>*.tsr.corrupt</c>, so they are kept for
    /// inspection but no longer shadow the good ones). Null when there is none.
    /// </summary>
    public (string Path, JsonObject Metadata, Dictionary<string, Tensor> Tensors)? LoadLatest(Action<string> warn, bool moveAsideUnusable = false)
    {
        foreach (var path in List())
        {
            try
            {
                var (meta, tensors) = Checkpoint.Load(path);
                return (path, meta, tensors);
            }
            catch (TrainingCheckpointException e)
            {
                if (moveAsideUnusable)
                {
                    var aside = path + ".corrupt";
                    File.Move(path, aside, overwrite: true);
                    warn($"{e.Message} Moved it aside to {aside}. Falling back to the previous checkpoint.");
                }
                else warn($"{e.Message} Falling back to the previous checkpoint.");
            }
        }
        return null;
    }
}
