using SkiaSharp;

namespace Tessera.Data;

/// <summary>PNG reading and writing for RGB byte images (row-major, 3 bytes per pixel).</summary>
public static class ImageFiles
{
    /// <summary>Encodes RGB pixels as PNG bytes (deterministic for the same pixels).</summary>
    public static byte[] EncodePng(byte[] rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3)
            throw new ArgumentException($"{rgb.Length} bytes is not a {width}x{height} RGB image ({width * height * 3} bytes).", nameof(rgb));
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[width * height * 4];
        for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
        {
            rgba[i] = rgb[j];
            rgba[i + 1] = rgb[j + 1];
            rgba[i + 2] = rgb[j + 2];
            rgba[i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Writes a PNG atomically (temporary file, then rename).</summary>
    public static void WritePng(string path, byte[] rgb, int width, int height)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + $".{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temp, EncodePng(rgb, width, height));
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>
    /// Decodes an image file (PNG, JPEG, WebP, ...) to RGB, resized to <paramref name="size"/>x<paramref name="size"/>
    /// when given. Throws <see cref="InvalidDataException"/> naming the file when it is not an image.
    /// </summary>
    public static (byte[] Rgb, int Width, int Height) ReadRgb(string path, int? size = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Image file {path} does not exist.", path);
        return DecodeRgb(File.ReadAllBytes(path), path, size);
    }

    /// <summary>The same from encoded bytes (an upload); <paramref name="path"/> names the source in errors.</summary>
    public static (byte[] Rgb, int Width, int Height) DecodeRgb(byte[] encoded, string path, int? size = null)
    {
        SKBitmap? bitmapOrNull;
        try { bitmapOrNull = SKBitmap.Decode(encoded); }
        catch (ArgumentException) { bitmapOrNull = null; } // SkiaSharp throws when no codec recognises the bytes
        using var decoded = bitmapOrNull
            ?? throw new InvalidDataException($"{path} is not an image Tessera can read (PNG, JPEG, WebP, GIF or BMP).");
        using var converted = decoded.Copy(SKColorType.Rgba8888) ?? throw new InvalidDataException($"{path}: unsupported pixel format.");
        SKBitmap bitmap = converted;
        SKBitmap? resized = null;
        if (size is int s && (bitmap.Width != s || bitmap.Height != s))
        {
            resized = bitmap.Resize(new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Premul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear))
                ?? throw new InvalidDataException($"{path}: could not be resized to {s}x{s}.");
            bitmap = resized;
        }
        try
        {
            var rgba = bitmap.Bytes;
            var rgb = new byte[bitmap.Width * bitmap.Height * 3];
            for (int i = 0, j = 0; j < rgb.Length; i += 4, j += 3)
            {
                rgb[j] = rgba[i];
                rgb[j + 1] = rgba[i + 1];
                rgb[j + 2] = rgba[i + 2];
            }
            return (rgb, bitmap.Width, bitmap.Height);
        }
        finally
        {
            resized?.Dispose();
        }
    }
}
