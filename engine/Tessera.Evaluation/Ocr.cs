using System.Diagnostics;
using Tessera.Data;

namespace Tessera.Evaluation;

/// <summary>
/// Reads a word from an image with the tesseract command (Debian: <c>apt-get install tesseract-ocr</c>):
/// the image is upscaled 4x (nearest), read as one text line (<c>--psm 7</c>) restricted to A-Z. The same reader is
/// applied to generated images and to ground-truth renders, so the ground truth's score is the ceiling.
/// </summary>
public sealed class Ocr
{
    private readonly string _exe;

    private Ocr(string exe) => _exe = exe;

    /// <summary>The tesseract reader, or null with the reason when it is not installed.</summary>
    public static Ocr? Find(out string? whyNot)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            var exe = Path.Combine(dir, "tesseract");
            if (File.Exists(exe)) { whyNot = null; return new Ocr(exe); }
        }
        whyNot = "tesseract is not installed (Debian: apt-get install tesseract-ocr); OCR evaluation was skipped.";
        return null;
    }

    public string Read(byte[] rgb, int size)
    {
        var temp = Path.Combine(Path.GetTempPath(), $"tessera-ocr-{Environment.ProcessId}-{Guid.NewGuid():N}.png");
        try
        {
            File.WriteAllBytes(temp, ImageFiles.EncodePng(Upscale(rgb, size, 4), size * 4, size * 4));
            var psi = new ProcessStartInfo(_exe) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { temp, "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=ABCDEFGHIJKLMNOPQRSTUVWXYZ" }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return new string(text.Where(char.IsAsciiLetterUpper).ToArray());
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static byte[] Upscale(byte[] rgb, int size, int f)
    {
        int big = size * f;
        var output = new byte[big * big * 3];
        for (int y = 0; y < big; y++)
            for (int x = 0; x < big; x++)
                Array.Copy(rgb, ((y / f) * size + x / f) * 3, output, (y * big + x) * 3, 3);
        return output;
    }

    /// <summary>Levenshtein distance divided by the longer length (0 = same, 1 = nothing in common).</summary>
    public static double NormalizedEditDistance(string a, string b)
    {
        if (a.Length == 0 && b.Length == 0) return 0;
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return (double)d[a.Length, b.Length] / Math.Max(a.Length, b.Length);
    }
}
