using System.Security.Cryptography;

namespace Tessera.Abstractions;

/// <summary>
/// An ONNX model to compile: a file (external-data files are resolved next to it) or bytes in memory.
/// </summary>
public sealed class ModelSource
{
    private byte[]? _bytes;
    private string? _contentHash;

    private ModelSource(string displayName, string? path, byte[]? bytes)
    {
        DisplayName = displayName;
        FilePath = path;
        _bytes = bytes;
    }

    /// <summary>Path of the model file, or null for an in-memory model.</summary>
    public string? FilePath { get; }

    /// <summary>Name used in messages: the file path, or the name given to <see cref="FromBytes"/>.</summary>
    public string DisplayName { get; }

    /// <summary>A model file. The file is read lazily; a missing file fails when it is first read, naming the path.</summary>
    public static ModelSource FromFile(string path) => new(Path.GetFullPath(path), Path.GetFullPath(path), null);

    /// <summary>A model held in memory. The array is not copied: do not change it afterwards.</summary>
    public static ModelSource FromBytes(byte[] onnxBytes, string displayName = "<in-memory model>") =>
        new(displayName, null, onnxBytes ?? throw new ArgumentNullException(nameof(onnxBytes)));

    /// <summary>The model's bytes (read once from disk and kept).</summary>
    public byte[] GetBytes()
    {
        if (_bytes is not null) return _bytes;
        try
        {
            return _bytes = File.ReadAllBytes(FilePath!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(DisplayName, $"cannot be read ({e.Message}). Check the path and permissions.", e);
        }
    }

    /// <summary>
    /// SHA-256 of the model bytes, lowercase hex. Stable across processes; used as a cache key. A file is hashed as a
    /// stream, so large models are not held in memory just to be hashed.
    /// </summary>
    public string ContentHash => _contentHash ??= Convert.ToHexStringLower(_bytes is not null ? SHA256.HashData(_bytes) : HashFile());

    private byte[] HashFile()
    {
        try
        {
            using var stream = File.OpenRead(FilePath!);
            return SHA256.HashData(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(DisplayName, $"cannot be read ({e.Message}). Check the path and permissions.", e);
        }
    }

    public override string ToString() => DisplayName;
}
