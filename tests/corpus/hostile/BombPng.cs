using System.Buffers.Binary;
using System.IO.Compression;

namespace Tessera.Tests.Corpus;

/// <summary>
/// Writes a decompression bomb: a PNG of one colour that declares <c>width</c> x <c>height</c> pixels (10000x10000 is
/// about 300 KB on disk and 400 MB decoded). Made at test time instead of kept in the repo.
/// </summary>
internal static class BombPng
{
    public static void Write(string path, int width, int height)
    {
        using var file = File.Create(path);
        file.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(file, "IHDR", ihdr);
        using (var idat = new MemoryStream())
        {
            using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
            {
                var row = new byte[1 + 3L * width]; // filter byte 0, then black pixels
                for (int y = 0; y < height; y++) z.Write(row);
            }
            Chunk(file, "IDAT", idat.ToArray());
        }
        Chunk(file, "IEND", []);
    }

    /// <summary>The same bomb as bytes (for uploads).</summary>
    public static byte[] Bytes(int width, int height)
    {
        var temp = Path.GetTempFileName();
        try { Write(temp, width, height); return File.ReadAllBytes(temp); }
        finally { File.Delete(temp); }
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typeBytes, data));
        s.Write(crc);
    }

    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(byte[] a, byte[] b)
    {
        uint c = 0xFFFFFFFF;
        foreach (var x in a) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
        foreach (var x in b) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFF;
    }
}
