using System.Runtime.InteropServices;
using System.Text;

namespace Tessera.Plugins.Cuda;

/// <summary>
/// The CUDA libraries ONNX Runtime's CUDA execution provider (<c>libonnxruntime_providers_cuda.so</c>) loads, and which
/// of them this machine lacks. ONNX Runtime loads that provider library only when a session asks for CUDA, and then
/// fails with the dynamic loader's message; this names the missing library up front, when devices are listed.
/// </summary>
public static class CudaLibraries
{
    /// <summary>
    /// What the CUDA provider of Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0 loads, in the order the dynamic loader meets
    /// them: its DT_NEEDED entries as `readelf -d` lists them (CUDA 13: cuBLASLt, cuBLAS, cuRAND, the runtime), then
    /// cuDNN 9, which it opens at run time. The driver (libcuda.so.1, also DT_NEEDED) is probed separately.
    /// </summary>
    public static readonly IReadOnlyList<string> PackagedProviderNeeds =
        ["libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudart.so.13", "libcudnn.so.9"];

    /// <summary>cuDNN is opened with dlopen at run time, so it is not among the provider library's DT_NEEDED entries.</summary>
    public const string CudnnLibrary = "libcudnn.so.9";

    /// <summary>
    /// The CUDA libraries a provider library needs: its DT_NEEDED entries of the CUDA family (the driver excepted),
    /// then cuDNN. A provider library that cannot be read yields <see cref="PackagedProviderNeeds"/>.
    /// </summary>
    public static IReadOnlyList<string> NeededBy(string? providerLibrary)
    {
        if (providerLibrary is null || !File.Exists(providerLibrary)) return PackagedProviderNeeds;
        IReadOnlyList<string> needed;
        try { needed = ElfNeeded.Read(providerLibrary); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException) { return PackagedProviderNeeds; }
        var cuda = needed.Where(IsCudaFamily).Where(n => n != "libcuda.so.1").ToList();
        if (!cuda.Contains(CudnnLibrary)) cuda.Add(CudnnLibrary);
        return cuda;
    }

    private static bool IsCudaFamily(string soname) => soname.StartsWith("libcu", StringComparison.Ordinal) || soname.StartsWith("libnv", StringComparison.Ordinal);

    /// <summary>The CUDA major version a list asks for (13 from libcudart.so.13), or null.</summary>
    public static int? CudaMajor(IEnumerable<string> libraries) =>
        libraries.Where(l => l.StartsWith("libcudart.so.", StringComparison.Ordinal))
            .Select(l => int.TryParse(l["libcudart.so.".Length..], out var m) ? m : (int?)null).FirstOrDefault(m => m is not null);

    /// <summary>What to install for a library, e.g. "cuBLAS for CUDA 13 (NVIDIA's libcublas-13-x package, or the CUDA 13 toolkit)".</summary>
    public static string WhatProvides(string soname, int? cudaMajor)
    {
        var cuda = cudaMajor is { } m ? $"CUDA {m}" : "CUDA";
        var x = cudaMajor is { } n ? $"{n}-x" : "<version>";
        string Part(string what, string deb) => $"{what} for {cuda} (NVIDIA's {deb} package, or the {cuda} toolkit)";
        if (soname.StartsWith("libcudart.", StringComparison.Ordinal)) return Part("the CUDA runtime", $"cuda-cudart-{x}");
        if (soname.StartsWith("libcublasLt.", StringComparison.Ordinal) || soname.StartsWith("libcublas.", StringComparison.Ordinal)) return Part("cuBLAS", $"libcublas-{x}");
        if (soname.StartsWith("libcurand.", StringComparison.Ordinal)) return Part("cuRAND", $"libcurand-{x}");
        if (soname.StartsWith("libcufft.", StringComparison.Ordinal)) return Part("cuFFT", $"libcufft-{x}");
        if (soname.StartsWith("libnvrtc.", StringComparison.Ordinal)) return Part("NVRTC", $"cuda-nvrtc-{x}");
        if (soname.StartsWith("libcudnn.", StringComparison.Ordinal))
        {
            var major = soname["libcudnn.so.".Length..];
            return $"cuDNN {major} for {cuda} (NVIDIA's libcudnn{major}-cuda-{cudaMajor?.ToString() ?? "<version>"} package)";
        }
        return $"a {cuda} library";
    }

    /// <summary>A library found (and where) or not.</summary>
    public sealed record Found(string Library, string? Path);

    /// <summary>
    /// Looks for each library the way ONNX Runtime's loader will: first in <paramref name="folders"/> (loaded from
    /// there by full path, which keeps it resident so the provider library's DT_NEEDED entry resolves to it by
    /// soname), then by soname through the system search (LD_LIBRARY_PATH, the ld.so cache, the default folders).
    /// </summary>
    public static IReadOnlyList<Found> Locate(IEnumerable<string> libraries, IEnumerable<string> folders)
    {
        var dirs = folders.Where(d => d.Length > 0).ToList();
        var result = new List<Found>();
        foreach (var lib in libraries)
        {
            string? at = null;
            foreach (var d in dirs)
            {
                var p = System.IO.Path.Combine(d, lib);
                if (File.Exists(p) && NativeLibrary.TryLoad(p, out _)) { at = p; break; }
            }
            if (at is null && NativeLibrary.TryLoad(lib, out var handle))
            {
                at = lib;
                NativeLibrary.Free(handle);
            }
            result.Add(new Found(lib, at));
        }
        return result;
    }

    /// <summary>
    /// One sentence naming the first missing library and what provides it, then the others missing; null when all
    /// were found.
    /// </summary>
    public static string? Reason(IReadOnlyList<Found> found)
    {
        var missing = found.Where(f => f.Path is null).Select(f => f.Library).ToList();
        if (missing.Count == 0) return null;
        var major = CudaMajor(found.Select(f => f.Library));
        var first = missing[0];
        var also = missing.Count > 1 ? $"; also missing: {string.Join(", ", missing.Skip(1))}" : "";
        return $"the CUDA execution provider needs {first}, which was not found: install {WhatProvides(first, major)}{also}. " +
               "Put them where the loader finds them (the ld.so cache, LD_LIBRARY_PATH) or set plugins.cuda.cuda_library_path to their folder.";
    }
}

/// <summary>Reads the DT_NEEDED entries of a 64-bit little-endian ELF shared library, without loading it.</summary>
public static class ElfNeeded
{
    public static IReadOnlyList<string> Read(string path)
    {
        using var f = File.OpenRead(path);
        var header = ReadAt(f, 0, 64);
        if (header[0] != 0x7F || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F' || header[4] != 2 || header[5] != 1)
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file.");
        long shoff = BitConverter.ToInt64(header, 0x28);
        int shentsize = BitConverter.ToUInt16(header, 0x3A), shnum = BitConverter.ToUInt16(header, 0x3C);
        if (shoff <= 0 || shentsize < 64 || shnum == 0) throw new InvalidDataException($"{path} has no section headers.");
        var sections = ReadAt(f, shoff, shentsize * shnum);
        for (int i = 0; i < shnum; i++)
        {
            int sh = i * shentsize;
            if (BitConverter.ToUInt32(sections, sh + 4) != 6) continue; // SHT_DYNAMIC
            long offset = BitConverter.ToInt64(sections, sh + 24), size = BitConverter.ToInt64(sections, sh + 32);
            int link = (int)BitConverter.ToUInt32(sections, sh + 40);
            if (link >= shnum || size <= 0 || size > 1 << 20) throw new InvalidDataException($"{path}: malformed dynamic section.");
            long strOffset = BitConverter.ToInt64(sections, link * shentsize + 24), strSize = BitConverter.ToInt64(sections, link * shentsize + 32);
            if (strSize <= 0 || strSize > 16 << 20) throw new InvalidDataException($"{path}: malformed dynamic string table.");
            var dynamic = ReadAt(f, offset, (int)size);
            var strings = ReadAt(f, strOffset, (int)strSize);
            var needed = new List<string>();
            for (int e = 0; e + 16 <= dynamic.Length; e += 16)
            {
                long tag = BitConverter.ToInt64(dynamic, e);
                if (tag == 0) break; // DT_NULL
                if (tag != 1) continue; // DT_NEEDED
                long at = BitConverter.ToInt64(dynamic, e + 8);
                if (at < 0 || at >= strings.Length) throw new InvalidDataException($"{path}: DT_NEEDED points outside the string table.");
                int end = (int)at;
                while (end < strings.Length && strings[end] != 0) end++;
                needed.Add(Encoding.ASCII.GetString(strings, (int)at, end - (int)at));
            }
            return needed;
        }
        return [];
    }

    private static byte[] ReadAt(FileStream f, long offset, int count)
    {
        if (offset < 0 || offset + count > f.Length) throw new InvalidDataException($"{f.Name}: a header points past the end of the file.");
        var buffer = new byte[count];
        f.Position = offset;
        f.ReadExactly(buffer);
        return buffer;
    }
}
