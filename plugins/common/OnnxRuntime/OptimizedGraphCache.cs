using System.Security.Cryptography;
using System.Text;

namespace Tessera.Plugins.OnnxRuntime;

/// <summary>
/// On-disk cache of graphs already optimized by ONNX Runtime, keyed by model content + compile options +
/// execution provider + ONNX Runtime version + hardware. Entries are written under a temporary name and renamed into
/// place, so a reader never sees a half-written file; an entry that fails to load is deleted and rebuilt.
/// </summary>
public sealed class OptimizedGraphCache(string directory)
{
    public string Directory { get; } = directory;

    /// <summary>The cache key for one compile.</summary>
    public static string Key(string modelContentHash, string canonicalOptions, string provider, string ortVersion, string hardware)
    {
        var text = $"{modelContentHash}|{canonicalOptions}|{provider}|ort={ortVersion}|arch={System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}|hw={hardware}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];
    }

    /// <summary>Path of the optimized model for a key (it may not exist).</summary>
    public string PathFor(string key) => Path.Combine(Directory, key + ".onnx");

    /// <summary>A fresh temporary path to let ONNX Runtime write an optimized model to, before <see cref="Commit"/>.</summary>
    public string TempPathFor(string key)
    {
        System.IO.Directory.CreateDirectory(Directory);
        return Path.Combine(Directory, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>Moves a finished temporary file into place; returns the entry's path.</summary>
    public string Commit(string tempPath, string key)
    {
        var path = PathFor(key);
        File.Move(tempPath, path, overwrite: true);
        return path;
    }

    /// <summary>Removes an entry (e.g. one that failed to load).</summary>
    public void Evict(string key)
    {
        try { File.Delete(PathFor(key)); } catch (IOException) { }
    }
}
