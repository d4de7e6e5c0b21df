namespace Tessera.Cli;

/// <summary>Files the CLI writes (-o, --save): checked first, then written to a temporary file and renamed into place.</summary>
public static class OutputFiles
{
    /// <summary>Throws an <see cref="IOException"/> naming the path unless a file can be written there (new, or an existing regular file).</summary>
    public static string Check(string path, string option)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new IOException($"{option} {full} is a folder; give a file path such as {Path.Combine(full, "out.png")}.");
        if (File.Exists(full) && (File.GetAttributes(full) & FileAttributes.Directory) == 0 && !IsRegular(full))
            throw new IOException($"{option} {full} is not a regular file (a device or pipe); give the path of a file to write.");
        var dir = Path.GetDirectoryName(full)!;
        if (File.Exists(dir))
            throw new IOException($"{option} {full}: {dir} is a file, not a folder; give a path in a folder.");
        return full;
    }

    /// <summary>Writes <paramref name="bytes"/> atomically: a temporary file in the same folder, renamed over the target.</summary>
    public static void Write(string path, byte[] bytes, string option)
    {
        var full = Check(path, option);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new IOException($"{option} {full} could not be written: {e.Message}", e);
        }
    }

    private static bool IsRegular(string path)
    {
        try { Tessera.Abstractions.InputFiles.RequireRegularFile(path, "Output", long.MaxValue); return true; }
        catch (InvalidDataException) { return false; }
    }
}
