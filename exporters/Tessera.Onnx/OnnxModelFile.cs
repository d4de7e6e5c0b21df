using Google.Protobuf;
using Tessera.Onnx.Proto;

namespace Tessera.Onnx;

/// <summary>When and how initializers go to an external data file instead of the .onnx protobuf.</summary>
/// <param name="MinTensorBytes">Initializers of at least this many bytes go external (smaller ones stay inline).</param>
/// <param name="Alignment">Offsets are multiples of this (4096 lets ONNX Runtime memory-map the weights).</param>
public sealed record ExternalDataOptions(long MinTensorBytes = 1024, int Alignment = 4096);

/// <summary>Reads and writes .onnx files, with ONNX external data (<c>location</c>, <c>offset</c>, <c>length</c>).</summary>
public static class OnnxModelFile
{
    /// <summary>Protobuf cannot serialize a message of 2 GiB or more; past this total weight size, external data is used.</summary>
    public const long ProtobufLimitBytes = int.MaxValue;

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/>. With <paramref name="external"/> set, or when the
    /// weights would not fit in one protobuf, large initializers go to <c>{file name}.data</c> beside it.
    /// The model object is not changed. Both files are written to temporary names and renamed into place.
    /// </summary>
    /// <returns>The path of the external data file, or null when everything is inline.</returns>
    public static string? Save(ModelProto model, string path, ExternalDataOptions? external = null)
    {
        long weightBytes = model.Graph.Initializer.Sum(OnnxTensors.PayloadBytes);
        if (external is null && weightBytes < ProtobufLimitBytes - (64L << 20))
        {
            WriteAtomically(path, s => model.WriteTo(s));
            return null;
        }
        external ??= new ExternalDataOptions();

        var copy = model.Clone();
        var dataName = Path.GetFileName(path) + ".data";
        var dataPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, dataName);
        WriteAtomically(dataPath, data =>
        {
            long offset = 0;
            foreach (var t in copy.Graph.Initializer)
            {
                if (t.RawData.Length < external.MinTensorBytes) continue;
                long pad = (external.Alignment - offset % external.Alignment) % external.Alignment;
                if (pad > 0) { data.Write(new byte[pad]); offset += pad; }
                t.RawData.WriteTo(data);
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString() });
                t.DataLocation = TensorProto.Types.DataLocation.External;
                offset += t.RawData.Length;
                t.RawData = ByteString.Empty;
            }
        });
        WriteAtomically(path, s => copy.WriteTo(s));
        return dataPath;
    }

    /// <summary>
    /// Reads a model and loads any external data into its initializers, so every tensor holds its values.
    /// Throws <see cref="Tessera.Abstractions.ModelLoadException"/> naming the file for unreadable or non-ONNX content.
    /// </summary>
    public static ModelProto Load(string path)
    {
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new Tessera.Abstractions.ModelLoadException(path, $"is not a valid ONNX file ({e.Message}).", e);
        }
        catch (IOException e)
        {
            throw new Tessera.Abstractions.ModelLoadException(path, $"cannot be read ({e.Message}).", e);
        }
        if (model.Graph is null)
            throw new Tessera.Abstractions.ModelLoadException(path, "has no graph; it is not an ONNX model.");

        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var t in model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External))
        {
            var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
            var location = Path.Combine(dir, entries["location"]);
            long offset = entries.TryGetValue("offset", out var o) ? long.Parse(o) : 0;
            using var f = File.OpenRead(location);
            long length = entries.TryGetValue("length", out var l) ? long.Parse(l) : f.Length - offset;
            var buffer = new byte[length];
            f.Seek(offset, SeekOrigin.Begin);
            f.ReadExactly(buffer);
            t.RawData = ByteString.CopyFrom(buffer);
            t.ExternalData.Clear();
            t.DataLocation = TensorProto.Types.DataLocation.Default;
        }
        return model;
    }

    private static void WriteAtomically(string path, Action<Stream> write)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var s = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                write(s);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
