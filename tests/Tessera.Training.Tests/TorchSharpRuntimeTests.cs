using System.Text;
using Tessera.Models;

namespace Tessera.Training.Tests;

/// <summary>
/// Tessera's fix for TorchSharp on Debian 12 (build/TorchSharpGlibcxxFix.targets): the output copy of
/// libLibTorchSharp.so has its GLIBCXX_3.4.32 requirement marked weak where the system libstdc++ lacks that version,
/// the NuGet cache copy is left as shipped, and libtorch then loads.
/// </summary>
[TestClass]
public sealed class TorchSharpRuntimeTests
{
    private const string Version = "GLIBCXX_3.4.32";
    private const ushort Weak = 2; // VER_FLG_WEAK

    [TestMethod]
    public void TheBuildMarksGlibcxx3432WeakInTheOutputCopyOnlyWhereLibstdcxxLacksItAndLibtorchLoads()
    {
        var output = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        var v = typeof(TorchSharp.torch).Assembly.GetName().Version!;
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var cache = Path.Combine(packages, "torchsharp", $"{v.Major}.{v.Minor}.{v.Build}", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.IsTrue(File.Exists(cache), $"TorchSharp's package copy is at {cache}");

        var cacheFlags = RequirementFlags(cache);
        Assert.IsNotNull(cacheFlags, $"TorchSharp {v} asks for {Version} (if a release stops asking, the fix can go)");
        Assert.AreEqual(0, cacheFlags & Weak, "the NuGet cache copy is never patched");
        bool systemHasIt = SystemLibstdcxx.Any(lib => File.Exists(lib) && IndexOf(File.ReadAllBytes(lib), Encoding.ASCII.GetBytes(Version + "\0")) >= 0);
        Assert.AreEqual(systemHasIt ? 0 : Weak, RequirementFlags(output)!.Value & Weak,
            systemHasIt ? "libstdc++ has the version, so the output copy is left as shipped" : $"libstdc++ lacks {Version}, so the output copy marks it weak");

        StringAssert.Contains(TorchRuntime.Describe(), "libtorch CPU", "libtorch loads with the patched library");
    }

    private static readonly string[] SystemLibstdcxx =
        ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6"];

    /// <summary>The vna_flags of the Vernaux entry naming <see cref="Version"/> in .gnu.version_r, or null when there is none.</summary>
    private static ushort? RequirementFlags(string path)
    {
        var b = File.ReadAllBytes(path);
        Assert.IsTrue(b.Length > 64 && b[0] == 0x7F && b[1] == 'E' && b[2] == 'L' && b[3] == 'F' && b[4] == 2 && b[5] == 1, $"{path} is a 64-bit little-endian ELF file");
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            int sh = (int)(shoff + (long)i * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
            long strtab = BitConverter.ToInt64(b, (int)(shoff + (long)BitConverter.ToUInt32(b, sh + 40) * shentsize) + 24);
            long vn = BitConverter.ToInt64(b, sh + 24);
            for (uint n = 0, count = BitConverter.ToUInt32(b, sh + 44); n < count; n++)
            {
                long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                for (int j = 0, cnt = BitConverter.ToUInt16(b, (int)vn + 2); j < cnt; j++)
                {
                    int name = (int)(strtab + BitConverter.ToUInt32(b, (int)aux + 8)), end = name;
                    while (b[end] != 0) end++;
                    if (Encoding.ASCII.GetString(b, name, end - name) == Version) return BitConverter.ToUInt16(b, (int)aux + 4);
                    aux += BitConverter.ToUInt32(b, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(b, (int)vn + 12);
            }
        }
        return null;
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);
}
