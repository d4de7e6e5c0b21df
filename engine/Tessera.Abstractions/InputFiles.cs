using System.Runtime.InteropServices;

namespace Tessera.Abstractions;

/// <summary>
/// Checks on files Tessera is told to read (model packages, configs, images, tensors, checkpoints), made before a
/// byte is read: the path is a regular file (not a directory, device, FIFO or socket, so <c>/dev/zero</c> cannot
/// hang a reader), it is no larger than the caller's limit, and, for package files, it lies inside its folder
/// without passing through a symbolic link. Every failure is an <see cref="InvalidDataException"/> or
/// <see cref="FileNotFoundException"/> whose message names the file, what is wrong and what to do.
/// </summary>
public static class InputFiles
{
    /// <summary>Largest JSON file (manifest, tokenizer table, placement table, engine config): 16 MiB.</summary>
    public const long MaxJsonBytes = 16L << 20;

    /// <summary>Largest single ONNX file: 2 GiB, protobuf's own limit (bigger models keep weights as external data).</summary>
    public const long MaxOnnxBytes = 2L << 30;

    /// <summary>
    /// Throws unless <paramref name="path"/> is an existing regular file of at most <paramref name="maxBytes"/>.
    /// <paramref name="what"/> says what the file is for ("Configuration file", "Image file").
    /// </summary>
    public static void RequireRegularFile(string path, string what, long maxBytes)
    {
        var full = Path.GetFullPath(path);
        var (kind, size) = Stat(full, followLinks: true);
        switch (kind)
        {
            case FileKind.Missing:
                throw new FileNotFoundException($"{what} {full} does not exist.", full);
            case FileKind.Directory:
                throw new InvalidDataException($"{what} {full} is a directory, not a file; pass the path of a file.");
            case FileKind.Other:
                throw new InvalidDataException($"{what} {full} is not a regular file (a device, pipe or socket); pass the path of an ordinary file.");
        }
        if (size > maxBytes)
            throw new InvalidDataException($"{what} {full} is {Describe(size)}; the limit is {Describe(maxBytes)}. Check that this is the right file.");
    }

    /// <summary>Reads a whole file after <see cref="RequireRegularFile"/>; never more than <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAllBytes(string path, string what, long maxBytes)
    {
        RequireRegularFile(path, what, maxBytes);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        // The size can change between the check and the read; read at most the limit plus one byte to notice.
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, maxBytes + 1 - buffer.Length))) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > maxBytes)
                throw new InvalidDataException($"{what} {Path.GetFullPath(path)} grew past the limit of {Describe(maxBytes)} while being read.");
        }
        return buffer.ToArray();
    }

    /// <summary>Reads a whole UTF-8 text file after <see cref="RequireRegularFile"/>.</summary>
    public static string ReadAllText(string path, string what, long maxBytes = MaxJsonBytes) =>
        new StreamReader(new MemoryStream(ReadAllBytes(path, what, maxBytes)), detectEncodingFromByteOrderMarks: true).ReadToEnd();

    /// <summary>
    /// Resolves a path a package (or any folder-relative description) names, confined to <paramref name="root"/>:
    /// no absolute paths, no <c>..</c> out of the folder, no symbolic link on the way, a regular file at the end of
    /// at most <paramref name="maxBytes"/>. Returns the full path. <paramref name="owner"/> names the file that gave
    /// the path (the manifest) and <paramref name="key"/> the entry in it, for the messages.
    /// </summary>
    public static string ResolveInside(string root, string relative, string owner, string key, long maxBytes)
    {
        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (string.IsNullOrWhiteSpace(relative))
            throw new InvalidDataException($"{owner}: '{key}' is empty; name a file inside {root}.");
        if (relative.Contains('\0'))
            throw new InvalidDataException($"{owner}: '{key}' contains a NUL character; name a file inside {root}.");
        if (Path.IsPathRooted(relative))
            throw new InvalidDataException($"{owner}: '{key}' is the absolute path '{relative}'; package files must be relative paths inside {root}.");
        var full = Path.GetFullPath(Path.Combine(root, relative));
        if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidDataException($"{owner}: '{key}' is '{relative}', which points outside the package folder {root}; package files must lie inside it.");
        // Every component below the root must be a real directory or file: a link could lead anywhere.
        var parts = full[(root.Length + 1)..].Split(Path.DirectorySeparatorChar);
        var current = root;
        foreach (var part in parts)
        {
            current = Path.Combine(current, part);
            var (kind, _) = Stat(current, followLinks: false);
            if (kind == FileKind.Link)
                throw new InvalidDataException($"{owner}: '{key}' goes through the symbolic link {current}; package files must be regular files inside the package folder (copy the file instead of linking it).");
            if (kind == FileKind.Missing)
                throw new FileNotFoundException($"{full} is missing from the package (the manifest's '{key}' file). Re-copy or re-export the package.", full);
        }
        RequireRegularFile(full, $"Package file ('{key}')", maxBytes);
        return full;
    }

    private enum FileKind { Missing, Regular, Directory, Link, Other }

    private static (FileKind Kind, long Size) Stat(string path, bool followLinks)
    {
        if (OperatingSystem.IsLinux())
        {
            try { return StatLinux(path, followLinks); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { } // e.g. musl without statx
        }
        // Elsewhere: .NET's view (devices look like files, so only the size and link checks apply).
        var info = new FileInfo(path);
        if (!followLinks && info.LinkTarget is not null) return (FileKind.Link, 0);
        if (Directory.Exists(path)) return (FileKind.Directory, 0);
        return info.Exists ? (FileKind.Regular, info.Length) : (FileKind.Missing, 0);
    }

    // statx(2) has the same struct layout on every Linux architecture (unlike stat(2)):
    // stx_mode is a u16 at offset 28, stx_size a u64 at offset 40.
    [DllImport("libc.so.6", EntryPoint = "statx", SetLastError = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, [Out] byte[] buffer);

    private static (FileKind, long) StatLinux(string path, bool followLinks)
    {
        const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100;
        const uint StatxType = 0x1, StatxMode = 0x2, StatxSize = 0x200;
        var buffer = new byte[256];
        if (statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType | StatxMode | StatxSize, buffer) != 0)
            return (FileKind.Missing, 0);
        int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;
        long size = (long)BitConverter.ToUInt64(buffer, 40);
        return mode switch
        {
            0x8000 => (FileKind.Regular, size),
            0x4000 => (FileKind.Directory, 0),
            0xA000 => (FileKind.Link, 0),
            _ => (FileKind.Other, 0),
        };
    }

    /// <summary>A byte count for messages: "290 KiB", "2 GiB".</summary>
    public static string Describe(long bytes) => bytes switch
    {
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30} GiB",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F1} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):F1} KiB",
        _ => $"{bytes} bytes",
    };
}
